# voxpipe - build, test, demo, bench.  `make help` lists the targets.
#
#   make            build every program into bin/ (installs missing Debian packages first)
#   make test       unit tests (Criterion) + pipeline tests (bats), on ../shared/data
#   make test-san   the whole test suite again under AddressSanitizer + UndefinedBehaviorSanitizer
#   make demo       the main job on the shipped data
#   make bench      benchmarks against the peers, side by side (numbers go to BENCHMARKS.md)

CC      ?= cc
SAN     ?= 0
SHARED  ?= $(abspath ../shared)
DATA    ?= $(SHARED)/data

PKGS    := msgpack libzmq libdeflate
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter \
               -Ilib -I/usr/include/nifti -MMD -MP -DVP_WITH_DCMTLS
LDLIBS  := -lnifti2 -lznz -lmsgpackc -lzmq -ldeflate -lisal -lz -lm -lpthread
# DICOM (lib/dicom*): DCMTK is C++ (lib/*.cc, compiled with $(CXX)); --as-needed keeps these out of
# the programs that do not use them
CXX     ?= g++
LDLIBS  += -Wl,--push-state,--as-needed -ldcmseg -ldcmfg -ldcmiod -ldcmtls -ldcmnet -ldcmdata -ldcmjpeg -ldcmjpls -ldcmimgle -lofstd -loflog -lopenjp2 \
           -lsodium -lssl -lcrypto -lstdc++ -Wl,--pop-state

ifeq ($(SAN),1)
BUILD   := build-san
BIN     := build-san/bin
OPT     := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
else
BUILD   := build
BIN     := bin
OPT     := -O2
LDSAN   :=
endif
CFLAGS  ?=
ALL_CFLAGS := $(CFLAGS_BASE) $(OPT) $(CFLAGS) -I/usr/include/openjpeg-2.5
ALL_CXXFLAGS := $(filter-out -std=c11 -Wstrict-prototypes,$(ALL_CFLAGS)) -std=c++17

# ---- what the machine has: CUDA parts are added when nvcc/cuDNN/NCCL exist; CPU parts always build
CUDA_HOME ?= /usr/local/cuda
NVCC    := $(shell command -v nvcc 2>/dev/null || ls $(CUDA_HOME)/bin/nvcc 2>/dev/null)
HAVE_CUDNN := $(shell test -f $(CUDA_HOME)/include/cudnn.h && echo 1)
HAVE_NCCL  := $(shell test -f $(CUDA_HOME)/include/nccl.h && echo 1)

# CUDA backend (lib/cuda/*.cu) when nvcc and cuDNN exist (make NVCC= forces the CPU-only build);
# otherwise lib/nn_cuda_stub.c answers "built without CUDA"
ifneq ($(and $(NVCC),$(HAVE_CUDNN)),)
CUDA_OBJ := $(patsubst lib/cuda/%.cu,$(BUILD)/lib/cuda/%.o,$(wildcard lib/cuda/*.cu))
NVFLAGS  := -O3 -std=c++17 -g -lineinfo -Ilib -I$(CUDA_HOME)/include -MMD -MP -Xcompiler -Wall,-Wextra,-Wno-unused-parameter \
            -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
ALL_CFLAGS += -DVP_HAVE_CUDA
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -Wl,--push-state,--as-needed -lcudnn -lcudart -lstdc++ -Wl,--pop-state
STUB     := lib/nn_cuda_stub.c
endif
# Data-parallel training across CPU ranks (trainers/): MPI when Open MPI's pkg-config is found;
# NCCL for GPU ranks when MPI, NCCL and nvcc all exist (its unique id is broadcast over MPI)
HAVE_MPI := $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1)
ifeq ($(HAVE_MPI),1)
ALL_CFLAGS += -DVP_HAVE_MPI $(shell pkg-config --cflags ompi-c)
LDLIBS   += -Wl,--push-state,--as-needed $(shell pkg-config --libs ompi-c) -Wl,--pop-state
endif
ifneq ($(and $(HAVE_MPI),$(HAVE_NCCL),$(NVCC)),)
ALL_CFLAGS += -DVP_HAVE_NCCL -I$(CUDA_HOME)/include
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -Wl,--push-state,--as-needed -lnccl -lcudart -Wl,--pop-state
endif
# DICOMweb (dcm-fetch --dicomweb, lib/dicom_web*) when libcurl's pkg-config is found
HAVE_CURL := $(shell pkg-config --exists libcurl 2>/dev/null && echo 1)
ifeq ($(HAVE_CURL),1)
ALL_CFLAGS += -DVP_WITH_CURL $(shell pkg-config --cflags libcurl)
LDLIBS   += -Wl,--push-state,--as-needed $(shell pkg-config --libs libcurl) -Wl,--pop-state
endif
LIB_SRC  := $(filter-out $(STUB),$(wildcard lib/*.c))
LIB_OBJ  := $(patsubst lib/%.c,$(BUILD)/lib/%.o,$(LIB_SRC)) $(patsubst lib/%.cc,$(BUILD)/lib/%.o,$(wildcard lib/*.cc)) $(CUDA_OBJ)
PROG_SRC := $(wildcard filters/*.c metrics/*.c trainers/*.c)
PROGS    := $(addprefix $(BIN)/,$(notdir $(PROG_SRC:.c=)))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all deps config print-ldlibs gpu-check-build test test-unit test-shell test-san demo bench clean help golden fuzz
all: config $(PROGS)

help:
	@sed -n '1,8p' Makefile

deps:
	@scripts/deps.sh build

config: deps
	@echo "voxpipe: cpu backend: yes"
	@echo "voxpipe: nvcc: $(if $(NVCC),$(NVCC),not found (CUDA parts skipped))"
	@echo "voxpipe: cuDNN: $(if $(HAVE_CUDNN),found,not found)  NCCL: $(if $(HAVE_NCCL),found,not found)  cuda backend: $(if $(CUDA_OBJ),yes,no)"
	@echo "voxpipe: MPI (data-parallel training on CPU ranks): $(if $(HAVE_MPI),yes,no)"
	@echo "voxpipe: libcurl (dcm-fetch --dicomweb): $(if $(HAVE_CURL),yes,no)"

$(BUILD)/lib/%.o: lib/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/lib/%.o: lib/%.cc
	@mkdir -p $(dir $@)
	$(CXX) $(ALL_CXXFLAGS) -c -o $@ $<

$(BUILD)/lib/cuda/%.o: lib/cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c -o $@ $<

$(BUILD)/libvoxpipe.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/prog/%.o: filters/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<
$(BUILD)/prog/%.o: metrics/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<
$(BUILD)/prog/%.o: trainers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BIN)/%: $(BUILD)/prog/%.o $(BUILD)/libvoxpipe.a
	@mkdir -p $(BIN)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libvoxpipe.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDSAN) -o $@ $^ $(LDLIBS) -lcriterion

# the link line of the programs, for scripts that build their own drivers against the library
# libFuzzer targets for the frame, NIfTI, safetensors and DICOM readers (tests/fuzz/README.md):
# FUZZ_TIME seconds each, then every saved reproducer replayed once. Needs clang (scripts/deps.sh fuzz).
FUZZ_TIME ?= 60
fuzz:
	@scripts/deps.sh fuzz
	$(MAKE) -f tests/fuzz/fuzz.mk -j2 all
	$(MAKE) -f tests/fuzz/fuzz.mk run FUZZ_TIME=$(FUZZ_TIME)
	$(MAKE) -f tests/fuzz/fuzz.mk replay

print-ldlibs:
	@echo $(LDLIBS)

# ---- GPU checks: tests/gpu/check.sh runs them by hand on a machine with a GPU (never in `make test`)
gpu-check-build: $(BUILD)/gpu/test_cuda_ops
$(BUILD)/gpu/test_cuda_ops: tests/gpu/test_cuda_ops.c $(BUILD)/libvoxpipe.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDSAN) -o $@ $^ $(LDLIBS)

# ---- tests
test-deps:
	@scripts/deps.sh test

test: test-deps all $(UNIT_BIN)
	@tests/run.sh $(BUILD) $(BIN) "$(DATA)"

test-san:
	@$(MAKE) --no-print-directory SAN=1 test

# regenerate every committed golden file with the real peers (needs scripts/requirements-golden.txt
# in .venv: MONAI, SimpleITK, surface-distance; plastimatch from Debian for the hausdorff goldens)
golden: test-deps
	.venv/bin/pip install -q -r scripts/requirements-golden.txt
	.venv/bin/python tests/scripts/make_golden_nn.py
	.venv/bin/python tests/scripts/make_golden_segresnet.py
	.venv/bin/python tests/scripts/make_golden_unet.py
	.venv/bin/python tests/scripts/make_golden_ccl.py
	.venv/bin/python tests/scripts/make_golden_metrics.py "$(DATA)"
	.venv/bin/python tests/scripts/make_golden_resample.py "$(DATA)"
	.venv/bin/python tests/scripts/make_golden_preproc.py "$(DATA)" tests/golden/preproc
	.venv/bin/python tests/scripts/make_golden_hausdorff.py "$(DATA)"
	.venv/bin/python tests/scripts/make_golden_train.py "$(DATA)"
	.venv/bin/python tests/scripts/make_golden_trainer.py
	.venv/bin/python tests/scripts/make_golden_nnprep.py
	.venv/bin/python tests/scripts/make_golden_augment.py "$(DATA)"

demo: all test-deps
	@scripts/demo.sh "$(DATA)"

bench: all test-deps
	@bench/run.sh "$(DATA)"

clean:
	rm -rf build build-san bin tests/tmp bench/out

.PHONY: test-deps
.SECONDARY:
-include $(LIB_OBJ:.o=.d) $(patsubst $(BIN)/%,$(BUILD)/prog/%.d,$(PROGS))
