# Two commands on a fresh machine (see README.md):
#   make demo   the main job: a project-local venv with a pinned Ultralytics, apply, check (figures table)
#   make test   the test suite (downloads the release wheels it needs into ~/.cache/rtdetr-patch/wheels)
#   make test-fast  the inner loop: everything but the tests marked slow (real model builds, training, kills)
#   make test-unit  seconds: the tests that need no Ultralytics wheel and no network (transforms on small sources,
#                   rules, MobileNetV3, layout); a test that asks for a wheel there fails
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ULTRALYTICS ?= 8.4.190
# pytest workers (pytest-xdist): the suite is mostly waiting on subprocesses, two overlap well on 2 cores
TEST_WORKERS ?= 2

.PHONY: demo test test-fast test-unit typecheck lint bench bench-stock clean

$(VENV)/.ready-$(ULTRALYTICS): pyproject.toml Makefile
	@echo "Setting up $(VENV): rtdetr-patch with its test extras, and Ultralytics $(ULTRALYTICS) with torch"
	@echo "(about 6 GB, 1-3 minutes the first time; later runs reuse it)..."
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[test]" "ultralytics==$(ULTRALYTICS)"
	touch $@

demo: $(VENV)/.ready-$(ULTRALYTICS)
	$(BIN)/rtdetr-patch apply
	$(BIN)/rtdetr-patch check

test: $(VENV)/.ready-$(ULTRALYTICS)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

test-fast: $(VENV)/.ready-$(ULTRALYTICS)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow"

test-unit: $(VENV)/.ready-$(ULTRALYTICS)
	RTDETR_PATCH_UNIT=1 $(BIN)/python -m pytest -m unit -q

# mypy on the package as installed: the repository's folders linked where pyproject's package-dir puts them
TYPECHECK := build/typecheck
typecheck: $(VENV)/.ready-$(ULTRALYTICS)
	rm -rf $(TYPECHECK)/rtdetr_patch && mkdir -p $(TYPECHECK)/rtdetr_patch
	for f in rtdetr_patch/*.py; do ln -s "$(CURDIR)/$$f" $(TYPECHECK)/rtdetr_patch/; done
	for d in patcher patches templates; do ln -s "$(CURDIR)/$$d" $(TYPECHECK)/rtdetr_patch/$$d; done
	cd $(TYPECHECK) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p rtdetr_patch

lint: $(VENV)/.ready-$(ULTRALYTICS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.ready-$(ULTRALYTICS)
	$(BIN)/python benchmarks/bench_cli.py

bench-stock: $(VENV)/.ready-$(ULTRALYTICS)
	$(BIN)/python benchmarks/bench_stock.py

clean:
	rm -rf $(VENV) build *.egg-info
