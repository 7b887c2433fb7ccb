# carebus — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PACKAGES := contracts shared services/scheduling_adapter services/billing_adapter \
            services/masterdata_validator services/mapper services/erp_poster \
            services/ops_console services/outbound \
            tools/erp_sandbox scenario
PYPROJECTS := $(addsuffix /pyproject.toml,$(PACKAGES))

.PHONY: install run test lint typecheck pytest bench chaos cluster fuzz clean-data help

help:
	@echo "make run    install everything, start NATS + PostgreSQL + all services (Ctrl-C stops)"
	@echo "make test   install, then ruff, mypy, contract gate and pytest"
	@echo "make bench  benchmarks (not part of make test); figures printed and kept in .data/bench"
	@echo "make chaos  the fault suite, every fault (make test runs a short version); .data/chaos"
	@echo "make cluster  scale-out on a 3-node NATS cluster: tests/scaleout (write pause, hand-over)"
	@echo "           and the 1-server vs cluster benchmark; figures printed, .data/bench/cluster.json"
	@echo "make fuzz   every HTTP route fuzzed from its OpenAPI document, and the HL7, X12, FHIR, CSV"
	@echo "           parsers and the MLLP framer with random inputs, far longer than in make test"

$(STAMP): constraints.txt requirements-dev.txt $(PYPROJECTS) tools/install_system_packages.sh
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "carebus needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements-dev.txt \
	  -e contracts -e 'shared[devstack]' \
	  $(addprefix -e ,$(filter services/% tools/% scenario,$(PACKAGES)))
	sh tools/install_system_packages.sh
	touch $(STAMP)

install: $(STAMP)

# The demo's day is today: completed visits without a charge become work items at once.
run: install
	CAREBUS_OPS_CONSOLE_COMPLETED_WITHOUT_CHARGE_H=$${CAREBUS_OPS_CONSOLE_COMPLETED_WITHOUT_CHARGE_H:-0} \
	  $(BIN)/carebus run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint typecheck
	$(BIN)/carebus contracts check
	$(BIN)/pytest

bench: install
	$(BIN)/pytest benchmarks -s -p no:cacheprovider -o python_files='bench_*.py'

# The fault suite: every fault its own run on a fresh stack (about 20 minutes on 2 cores, the
# 5-minute PostgreSQL outage included); make test runs its short version. Table printed and
# kept in .data/chaos/latest.json (docs/decisions/017).
chaos: install
	CAREBUS_CHAOS=full $(BIN)/pytest tests/chaos -m chaos -p no:cacheprovider

# Scale-out on a 3-node loopback NATS cluster with R3 streams (docs/decisions/027): the
# tests/scaleout suite (replicas keep the promises; the stream leader's node killed: write
# pause and catch-up printed; the mapper's lease holder SIGTERMed: hand-over printed), then
# the one-server against cluster benchmark (1 and 3 replicas per stage, as ratios).
cluster: install
	$(BIN)/pytest tests/scaleout -s -p no:cacheprovider
	$(BIN)/pytest benchmarks/bench_cluster.py -s -p no:cacheprovider -o python_files='bench_*.py'

# The API fuzz of make test with 25x the cases per route (CAREBUS_FUZZ_EXAMPLES to change), then
# the parser fuzz (tests/fuzz) with its 'fuzz' hypothesis profile: thousands of random inputs
# per property instead of make test's few derandomized ones (CAREBUS_FUZZ_PROFILE to change).
fuzz: install
	CAREBUS_FUZZ_EXAMPLES=$${CAREBUS_FUZZ_EXAMPLES:-200} $(BIN)/pytest tests/api -p no:cacheprovider
	CAREBUS_FUZZ_PROFILE=$${CAREBUS_FUZZ_PROFILE:-fuzz} $(BIN)/pytest tests/fuzz -p no:cacheprovider

clean-data:
	rm -rf .data
