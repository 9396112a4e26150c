# Benchmarks (issue 7). Included by the top-level Makefile: `include bench/bench.mk`.
# Other benchmark fragments add themselves to `bench` with a line `bench: bench-<name>`.
BENCH_PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
BENCH_SIZES ?= 100,1000,10000
BENCH_REPEAT ?= 3

.PHONY: bench bench-peers bench-peers-quick bench-profile bench-spec bench-health bench-replay bench-loop

## bench: every benchmark; prints the tables, writes bench/results/ (-k: one miss does not hide the rest)
bench: bench-peers bench-spec bench-health bench-replay

## bench-peers: pgship vs the floor, dbmate, yoyo and a psql loop (about 10 minutes)
bench-peers:
	$(BENCH_PYTHON) bench/peers.py --sizes $(BENCH_SIZES) --repeat $(BENCH_REPEAT)

## bench-peers-quick: every tool once at N=100 (a smoke test of the harness, not a measurement)
bench-peers-quick:
	$(BENCH_PYTHON) bench/peers.py --quick

## bench-profile: pyinstrument profile of `pgship migrate` (and the no-op rerun) at N=1000
bench-profile:
	$(BENCH_PYTHON) bench/peers.py --profile

## bench-spec: the specification's per-scenario isolation cost and whole-suite wall time
bench-spec:
	$(BENCH_PYTHON) bench/spec_overhead.py

## bench-replay: verify --replay and diff; 300 migrations replayed next to psql; embedded start-up (3-5 min)
bench-replay:
	$(BENCH_PYTHON) bench/replay.py --runs 5

## bench-health: /health/database under load (wrk on loopback)
bench-health:
	bash bench/health_load.sh

## bench-loop: `make test` and its parts on a fresh clone (git clone into /tmp), and the spec alone (~10 min)
bench-loop:
	python3 bench/loop.py

# -- start-up, no-op, status and the runner's CPU next to its references (issue "Performance") --------
PERF_SIZES ?= 1000,3000,10000
PERF_TOOLS ?= pgship,psycopg-min,psycopg-1rt,dbmate
PERF_RESULTS ?= bench/results/perf
.PHONY: bench-perf bench-perf-page
bench: bench-perf
## bench-perf: pgship vs the floors, the minimal runners and dbmate: ratios first (about 10 minutes;
## PERF_SIZES=1000,3000 skips N=10000, about 4 minutes); then docs/PERFORMANCE.md is regenerated
bench-perf: $(STAMP)
	$(BENCH_PYTHON) bench/peers.py --sizes $(PERF_SIZES) --noop-sizes 1000,3000 --repeat $(BENCH_REPEAT) \
		--tools $(PERF_TOOLS) --importtime --results $(PERF_RESULTS)
	$(MAKE) --no-print-directory bench-perf-page
## bench-perf-page: docs/PERFORMANCE.md from the last bench-perf run's JSON (no measuring)
bench-perf-page:
	$(BENCH_PYTHON) bench/performance_page.py $(PERF_RESULTS)/peers.json docs/PERFORMANCE.md
