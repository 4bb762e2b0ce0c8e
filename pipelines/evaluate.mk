# Score the predictions of one or more models against reference labels, compare the first two
# models, and write the study's report.
#
#   make -f pipelines/evaluate.mk PRED_DIRS="resseg=pred/resseg nnunet=pred/nnunet" REF=labels OUT=eval -j4
#   make -f pipelines/evaluate.mk PRED_A=pred/resseg PRED_B=pred/nnunet NAME_A=resseg NAME_B=nnunet REF=labels
#
# Inputs: REF holds the reference label volumes {id}.nii.gz (one per case); each model directory
# holds its predictions under the same names. Every case of REF needs a prediction from every model
# (ALLOW_MISSING=1 scores the cases a model has and leaves the others out of its tables).
# LABELS=spine25|totalseg-v2|MAPFILE remaps both volumes with label-map first (e.g. TotalSegmentator
# ids to the study's 25 spine classes). Model names: letters, digits, '.', '_', '+', '-'.
#
# Outputs under OUT (default eval):
#   MODEL/cases/{id}.tsv   metric-dice and hausdorff rows of one case (tidy TSV), one make target
#                          each, so `make -j N` scores N case-model pairs at once; within one,
#                          metric-dice and hausdorff read the same decoded stream side by side
#   MODEL.tsv              the model's case tables concatenated (one header)
#   ttest.tsv              ttest of the first two models (with two models or more)
#   report.md, report.html, report_figures/   the report (tables and PNG figures)
# Options passed on: DICE_OPTS (metric-dice), HD_OPTS (hausdorff), TTEST_OPTS, REPORT_OPTS;
# THREADS=N gives each program --threads N (THREADS=1 suits -j with as many jobs as cores).
#
# Re-running redoes only what changed: a case whose prediction, reference or program changed; every
# case when LABELS, DICE_OPTS or HD_OPTS change; a model's table when its cases change (one added or
# removed); ttest and the report when their inputs or options change. Every output is written to a
# temporary file and renamed, so an interrupted run leaves no half-written target.
REF       ?= $(error set REF to the directory of reference labels {id}.nii.gz)
OUT       ?= eval
LABELS    ?=
NAME_A    ?= A
NAME_B    ?= B
PRED_DIRS ?= $(if $(PRED_A),$(NAME_A)=$(PRED_A)) $(if $(PRED_B),$(NAME_B)=$(PRED_B))
BIN       ?= $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../bin)
THREADS   ?=
DICE_OPTS ?=
HD_OPTS   ?=
TTEST_OPTS ?=
REPORT_OPTS ?=
ALLOW_MISSING ?=

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DELETE_ON_ERROR:
.SUFFIXES:

MODELS := $(foreach p,$(strip $(PRED_DIRS)),$(firstword $(subst =, ,$(p))))
dir_of  = $(patsubst $(1)=%,%,$(filter $(1)=%,$(PRED_DIRS)))
ids_in  = $(sort $(patsubst $(1)/%.nii.gz,%,$(wildcard $(1)/*.nii.gz)))
CASES  := $(call ids_in,$(REF))

ifeq ($(strip $(MODELS)),)
$(error set PRED_DIRS="NAME=DIR ..." (or PRED_A and PRED_B) to the models' prediction directories)
endif
ifeq ($(CASES),)
$(error REF=$(REF): no reference labels *.nii.gz)
endif
$(foreach m,$(MODELS),$(if $(call dir_of,$(m)),,$(error PRED_DIRS: model '$(m)' has no directory (NAME=DIR))))

# a model's cases: REF's, less (with ALLOW_MISSING=1) those it has no prediction for
$(foreach m,$(MODELS),$(eval MISSING_$(m) := $(filter-out $(call ids_in,$(call dir_of,$(m))),$(CASES))))
$(foreach m,$(MODELS),$(if $(and $(MISSING_$(m)),$(if $(ALLOW_MISSING),,1)),\
  $(error model '$(m)': no prediction in $(call dir_of,$(m)) for case(s) $(MISSING_$(m)) (ALLOW_MISSING=1 to leave them out))))
$(foreach m,$(MODELS),$(eval CASES_$(m) := $(filter-out $(MISSING_$(m)),$(CASES))))

# stamps: STAMPS/KIND/CHECKSUM, the checksum of what the stamp stands for; a change makes a new,
# missing stamp (the old one of its kind removed) and so remakes what depends on it. No phony
# prerequisites: `make -q` stays quiet when all is done.
quote = '$(subst ','\'',$(1))'
cksum = $(firstword $(shell printf '%s' $(call quote,$(1)) | cksum))
STAMPS := $(OUT)/.stamps
SCORE_STAMP  := $(STAMPS)/score/$(call cksum,$(LABELS)|$(DICE_OPTS)|$(HD_OPTS))
TTEST_STAMP  := $(STAMPS)/ttest/$(call cksum,$(TTEST_OPTS))
REPORT_STAMP := $(STAMPS)/report/$(call cksum,$(REPORT_OPTS)|$(MODELS))
$(foreach m,$(MODELS),$(eval LIST_STAMP_$(m) := $(STAMPS)/cases-$(m)/$(call cksum,$(CASES_$(m)))))

MAPFILE := $(if $(filter-out spine25 totalseg-v2,$(LABELS)),$(LABELS))
MAPARG  := $(if $(filter spine25 totalseg-v2,$(LABELS)),--preset $(LABELS),--map $(LABELS))
MAPPIPE := $(if $(LABELS),| $(BIN)/label-map -q $(MAPARG) --vol label | $(BIN)/label-map -q $(MAPARG) --vol pred)
THR     := $(if $(THREADS),--threads $(THREADS))
TOOLS   := $(BIN)/vol-read $(BIN)/metric-dice $(BIN)/hausdorff $(if $(LABELS),$(BIN)/label-map)

TABLES := $(foreach m,$(MODELS),$(OUT)/$(m).tsv)
TTEST  := $(if $(word 2,$(MODELS)),$(OUT)/ttest.tsv)

all: $(OUT)/report.md
.PHONY: all

# explicit targets (a pattern rule would make them intermediate: deleted, and never remade when missing)
$(SCORE_STAMP) $(TTEST_STAMP) $(REPORT_STAMP) $(foreach m,$(MODELS),$(LIST_STAMP_$(m))):
	@mkdir -p $(@D); rm -f $(@D)/*; touch $@

# one case of one model: the stream decoded once, read by metric-dice (through a FIFO) and
# hausdorff at the same time; their tables joined under one header
# $(1) model, $(2) its prediction directory
define model_rules
$(OUT)/$(1)/cases/%.tsv: $(2)/%.nii.gz $(REF)/%.nii.gz $(SCORE_STAMP) $(TOOLS) $(MAPFILE)
	@mkdir -p $$(@D)
	t='$$@.tmp'; rm -f "$$$$t".*; trap 'wait; rm -f "$$$$t".*' EXIT; mkfifo "$$$$t.fifo"; \
	$(BIN)/metric-dice -q $(THR) $(DICE_OPTS) -i "$$$$t.fifo" -o "$$$$t.dice" & dice=$$$$!; \
	$(BIN)/vol-read -q $(REF)/$$*.nii.gz --image-name label --label $(2)/$$*.nii.gz --label-name pred --id '$$*' \
	  $(MAPPIPE) | tee "$$$$t.fifo" | $(BIN)/hausdorff -q $(THR) $(HD_OPTS) -o "$$$$t.hd"; \
	wait $$$$dice; \
	{ cat "$$$$t.dice"; tail -n +2 "$$$$t.hd"; } > "$$$$t.tsv"; mv "$$$$t.tsv" $$@

$(OUT)/$(1).tsv: $(foreach c,$(CASES_$(1)),$(OUT)/$(1)/cases/$(c).tsv) $(LIST_STAMP_$(1))
	awk 'FNR > 1 || NR == 1' $(foreach c,$(CASES_$(1)),$(OUT)/$(1)/cases/$(c).tsv) > $$@.tmp; mv $$@.tmp $$@
endef
$(foreach m,$(MODELS),$(eval $(call model_rules,$(m),$(call dir_of,$(m)))))

$(OUT)/ttest.tsv: $(wordlist 1,2,$(TABLES)) $(TTEST_STAMP) $(BIN)/ttest
	$(BIN)/ttest -q $(foreach m,$(wordlist 1,2,$(MODELS)),--model $(m)=$(OUT)/$(m).tsv) $(TTEST_OPTS) -o $@

$(OUT)/report.md $(OUT)/report.html &: $(TABLES) $(TTEST) $(REPORT_STAMP) $(BIN)/report
	$(BIN)/report -q $(foreach m,$(MODELS),--model $(m)=$(OUT)/$(m).tsv) $(if $(TTEST),--ttest $(TTEST)) \
	  $(REPORT_OPTS) -o $(OUT)/report.md --html $(OUT)/report.html
