# The reliability campaign (tests/faults, docs/RELIABILITY.md).
# `make pytest` already runs a short version (a few trials of each fault); these run the full one.
FAULT_TRIALS ?= 60

.PHONY: faults faults-doc

faults: $(STAMP)
	PGSHIP_FAULT_TRIALS=$(FAULT_TRIALS) $(PY) -m tests.faults.campaign

faults-doc: $(STAMP)
	PGSHIP_FAULT_TRIALS=$(FAULT_TRIALS) $(PY) -m tests.faults.campaign --write docs/RELIABILITY.md
