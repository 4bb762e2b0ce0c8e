# Convert a TotalSegmentator dataset (one directory per case: ct.nii.gz + segmentations/*.nii.gz)
# into the study's 25-class spine labels, one image and one label NIfTI per case.
#
#   make -f pipelines/totalseg-spine25.mk DATA=/data/Totalsegmentator_dataset_v201 OUT=spine25 -j2
#
# Re-running redoes only the cases whose inputs changed. Outputs are written atomically, so an
# interrupted run leaves no half-written file for make to mistake as up to date.
DATA ?= $(error set DATA to a TotalSegmentator dataset directory)
OUT  ?= spine25
BIN  ?= $(dir $(lastword $(MAKEFILE_LIST)))../bin
CASES := $(patsubst $(DATA)/%/ct.nii.gz,%,$(wildcard $(DATA)/*/ct.nii.gz))

all: $(foreach c,$(CASES),$(OUT)/$(c)_label.nii.gz)
	@echo "totalseg-spine25: $(words $(CASES)) case(s) in $(OUT)"

$(OUT)/%_label.nii.gz: $(DATA)/%/ct.nii.gz $(DATA)/%/segmentations
	$(BIN)/vol-read -q --labels spine25 $(DATA)/$* | $(BIN)/vol-write -o '$(OUT)/{id}_{vol}.nii.gz'

.PHONY: all
