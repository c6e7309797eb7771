# Two commands on a fresh machine (see README.md):
#   make demo   the main job: a project-local venv with a pinned Ultralytics, apply, check (figures table)
#   make test   the test suite (downloads the release wheels it needs into ~/.cache/rtdetr-patch/wheels)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ULTRALYTICS ?= 8.4.190

.PHONY: demo test bench clean

$(VENV)/.ready-$(ULTRALYTICS): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[test]" "ultralytics==$(ULTRALYTICS)"
	touch $@

demo: $(VENV)/.ready-$(ULTRALYTICS)
	$(BIN)/rtdetr-patch apply
	$(BIN)/rtdetr-patch check

test: $(VENV)/.ready-$(ULTRALYTICS)
	$(BIN)/python -m pytest

bench: $(VENV)/.ready-$(ULTRALYTICS)
	$(BIN)/python benchmarks/bench_cli.py

clean:
	rm -rf $(VENV) build *.egg-info
