# fuzz.mk - build and run the libFuzzer targets in tests/fuzz (clang, ASan + UBSan).
#
#   make -f tests/fuzz/fuzz.mk                      build tests/tmp/fuzz/fuzz_{frame,nifti,safetensors,dicom}
#   make -f tests/fuzz/fuzz.mk seeds                (re)make the seed corpora in tests/tmp/fuzz/seeds/*
#   make -f tests/fuzz/fuzz.mk run FUZZ_TIME=60     each target for FUZZ_TIME seconds on its corpus
#   make -f tests/fuzz/fuzz.mk run-frame FUZZ_TIME=600   one target
#   make -f tests/fuzz/fuzz.mk replay               every saved regression input, once (no fuzzing)
#
# The library is compiled again with clang into tests/tmp/fuzz/ (-fsanitize=fuzzer-no-link adds the
# coverage hooks); the CUDA backend is left out (lib/nn_cuda_stub.c). Crashes are written to
# tests/tmp/fuzz/crash/<target>/; copy a reproducer into tests/fuzz/regress/<target>/ to keep it.
CC_FUZZ  ?= clang
CXX_FUZZ ?= clang++
FUZZ_TIME ?= 60
FUZZ_JOBS ?= 1
B := tests/tmp/fuzz
SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
CFLAGS_F := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Ilib -I/usr/include/nifti \
            -I/usr/include/openjpeg-2.5 -DVP_WITH_DCMTLS -Wall -Wextra -Wno-unused-parameter -MMD -MP $(SAN)
CXXFLAGS_F := $(filter-out -std=c11,$(CFLAGS_F)) -std=c++17
LIBS_F := -lnifti2 -lznz -lmsgpackc -lzmq -ldeflate -lisal -lz -lm -lpthread \
          -ldcmseg -ldcmfg -ldcmiod -ldcmtls -ldcmnet -ldcmdata -ldcmjpeg -ldcmjpls -ldcmimgle -lofstd -loflog \
          -lopenjp2 -lsodium -lssl -lcrypto
TARGETS := frame nifti safetensors dicom
# the SIMD kernels use GCC-only builtins (__builtin_shuffle) and no fuzz target reaches them
LIB_C  := $(filter-out lib/nn_ops_fast.c lib/nn_ops_fast_conv.c lib/nn_grad_fast%.c,$(wildcard lib/*.c))
LIB_CC := $(wildcard lib/*.cc)
LIB_O  := $(patsubst lib/%.c,$(B)/lib/%.o,$(LIB_C)) $(patsubst lib/%.cc,$(B)/lib/%.o,$(LIB_CC))
# run options: bounded memory (a 2 GiB RSS / 1 GiB single malloc is a finding, saved as oom-* in
# crash/ and the run goes on: fork mode with -ignore_ooms; a crash or sanitizer report stops it),
# library messages hidden. The reproducers in tests/fuzz/regress/ are not fuzzed from (the known
# DCMTK allocation would stop nothing but fill crash/): `make -f tests/fuzz/fuzz.mk replay` runs them.
RUN_OPTS := -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=20 -close_fd_mask=2 -print_final_stats=1
export ASAN_OPTIONS := detect_leaks=1:allocator_may_return_null=1:abort_on_error=0
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1

.PHONY: all seeds run replay $(addprefix run-,$(TARGETS))
all: $(addprefix $(B)/fuzz_,$(TARGETS)) $(addprefix $(B)/replay_,$(TARGETS))

$(B)/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC_FUZZ) $(CFLAGS_F) -fsanitize=fuzzer-no-link -c $< -o $@
$(B)/lib/%.o: lib/%.cc
	@mkdir -p $(@D)
	$(CXX_FUZZ) $(CXXFLAGS_F) -fsanitize=fuzzer-no-link -c $< -o $@
# DCMTK_CC=FILE builds the DCMTK layer from another copy (e.g. the committed one while it is being edited)
ifneq ($(DCMTK_CC),)
$(B)/lib/dicom_dcmtk.o: $(DCMTK_CC) FORCE
	@mkdir -p $(@D)
	$(CXX_FUZZ) $(CXXFLAGS_F) -fsanitize=fuzzer-no-link -c $< -o $@
endif
.PHONY: FORCE
$(B)/libvp.a: $(LIB_O)
	rm -f $@ && ar rcs $@ $^
$(B)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(B)/libvp.a
	$(CXX_FUZZ) -x c $(CFLAGS_F) -fsanitize=fuzzer -c $< -o $@.o
	$(CXX_FUZZ) $(SAN) -fsanitize=fuzzer $@.o $(B)/libvp.a $(LIBS_F) -o $@
# a plain driver (no libFuzzer): runs each file given once; used by replay and by hardening.bats
$(B)/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c tests/fuzz/fuzz_common.h $(B)/libvp.a
	$(CXX_FUZZ) -x c $(CFLAGS_F) -c $< -o $@.o
	$(CXX_FUZZ) -x c $(CFLAGS_F) -c tests/fuzz/replay_main.c -o $@.main.o
	$(CXX_FUZZ) $(SAN) -fsanitize=fuzzer-no-link $@.o $@.main.o $(B)/libvp.a $(LIBS_F) -o $@

seeds:
	.venv/bin/python tests/fuzz/make_seeds.py $(B)/seeds

run: $(addprefix run-,$(TARGETS))
$(addprefix run-,$(TARGETS)): run-%: $(B)/fuzz_%
	@mkdir -p $(B)/corpus/$* $(B)/crash/$* $(B)/seeds/$*
	@test -n "$$(ls $(B)/seeds/$* 2>/dev/null)" || .venv/bin/python tests/fuzz/make_seeds.py $(B)/seeds
	$(B)/fuzz_$* $(RUN_OPTS) -max_total_time=$(FUZZ_TIME) -fork=$(FUZZ_JOBS) -ignore_ooms=1 \
	    -dict=tests/fuzz/$*.dict -artifact_prefix=$(B)/crash/$*/ $(B)/corpus/$* $(B)/seeds/$* \
	    > $(B)/log_$*.txt 2>&1; rc=$$?; tail -n 6 $(B)/log_$*.txt; ls $(B)/crash/$*; exit $$rc

replay: $(addprefix $(B)/replay_,$(TARGETS))
	@for t in $(TARGETS); do \
	    files=$$(ls tests/fuzz/regress/$$t/* 2>/dev/null); \
	    [ -z "$$files" ] || $(B)/replay_$$t $$files || exit 1; \
	done; echo "replay: all regression inputs pass"

-include $(LIB_O:.o=.d)
