# `make demo` and `make test` each create .venv when it is missing and install the package.
# TORCH picks the torch requirement installed before the package (override for a CUDA build:
# `make test TORCH="torch==2.11.0"`).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
HYPERMAML_DATA ?= $(abspath ../shared/data)
export HYPERMAML_DATA

.PHONY: demo test lint install clean fmnist-grid ablation

$(BIN)/hypermaml: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)" || $(BIN)/pip install -q "torch>=2.4"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/hypermaml

demo: install
	$(BIN)/hypermaml demo --out runs/demo

test: install
	$(BIN)/python -m pytest -q

# The HyperResNets ablation grid on Fashion-MNIST, one run per configs/classify_fmnist_*.yaml;
# finished runs are skipped and interrupted ones resumed. GRID_SET passes overrides to every run,
# e.g. make fmnist-grid GRID_SET="--set data.train_subset=10000 --set run.threads=2".
GRID_SET ?=
fmnist-grid: install
	@for c in configs/classify_fmnist_*.yaml; do \
	  n=$$(basename $$c .yaml); \
	  if [ -d runs/$$n/final ]; then echo "$$n: done"; \
	  elif [ -d runs/$$n/last ]; then $(BIN)/hypermaml classify --resume --out runs/$$n --quiet || exit 1; \
	  else $(BIN)/hypermaml classify $$c --out runs/$$n $(GRID_SET) --quiet || exit 1; fi; \
	done

# The paper's Table 5 ablation (switch x enhancement, Omniglot->EMNIST 1-shot) at 1/8 of its
# budget: one run per configs/cross_char_1s_ablation_*.yaml, resumed when interrupted, then its
# best (chosen on validation) scored on the 600 test tasks of seed 0. make -j2 runs two at once.
ABLATION := $(patsubst configs/%.yaml,runs/%/test_seed0.json,$(wildcard configs/cross_char_1s_ablation_*.yaml))
ablation: $(ABLATION)
	@for f in $(ABLATION); do echo "$$f: $$(cat $$f | tr -d '\n' | cut -c1-160)"; done

runs/%/test_seed0.json: configs/%.yaml | install
	if [ -d runs/$*/last ]; then $(BIN)/hypermaml train --resume --out runs/$* --quiet; \
	else $(BIN)/hypermaml train $< --out runs/$* --quiet; fi
	$(BIN)/hypermaml eval runs/$*/best --tasks 600 --seed 0 --json $@

lint: install
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs
