# pgship: `make help` lists the targets. Each area keeps its targets in make/*.mk.
.DEFAULT_GOAL := help
SHELL := /bin/bash

-include make/*.mk

.PHONY: help
help:  ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'
