# `make demo` and `make test` each create .venv when it is missing and install the package.
# TORCH picks the torch requirement installed before the package (override for a CUDA build:
# `make test TORCH="torch==2.11.0"`).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
HYPERMAML_DATA ?= $(abspath ../shared/data)
export HYPERMAML_DATA

.PHONY: demo test lint install clean fmnist-grid

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

lint: install
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs
