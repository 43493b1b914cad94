# Two entry points for a fresh clone (Python 3.11): `make demo` runs the pipeline, `make test` the tests.
# Both create .venv on first use. Anything else: activate .venv and use dvc / pytest directly.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

.PHONY: demo test check
# The stages start in a warm interpreter (latentseg/util/warm.py): torch is imported once, not once per stage (~7 s
# each on 2 cores). Same results without it; its log: .dvc/tmp/warm.log.
demo: $(VENV)/.installed  ## the main job: every table and figure of the current profile (demo by default)
	@mkdir -p .dvc/tmp; sock=$$(mktemp -u /tmp/latentseg-warm-XXXXXX.sock); \
	$(VENV)/bin/latentseg warm --socket $$sock --idle-timeout 600 > .dvc/tmp/warm.log 2>&1 & warm=$$!; \
	LATENTSEG_WARM=$$sock dvc repro; status=$$?; kill $$warm 2>/dev/null; exit $$status

test: $(VENV)/.installed  ## the test suite (CPU, a few minutes; a pytest-xdist worker per core, at most 4)
	$(PY) -m pytest -q --durations=15

# the claims come from reference/claims.yaml, evaluated on the same all.csv: no separate claims file to pass
check: $(VENV)/.installed  ## the built tables against the profile's reference; non-zero naming every cell out of tolerance and every must-hold claim that fails
	$(PY) stages/check.py --settings configs/reports.yaml --tables reports/tables/all.csv --reference reference
