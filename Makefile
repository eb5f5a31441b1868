# `make demo` and `make test` each create .venv when it is missing and install the package.
# TORCH picks the torch requirement installed before the package (override for a CUDA build:
# `make test TORCH="torch==2.11.0"`).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
HYPERMAML_DATA ?= $(abspath ../shared/data)
export HYPERMAML_DATA

.PHONY: browser demo test test-fast test-shipped docs lint install clean fmnist-grid ablation hyper-maml \
	natural-images like-with-like omniglot-baselines

$(BIN)/hypermaml: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)" || $(BIN)/pip install -q "torch>=2.4"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/hypermaml

demo: install
	$(BIN)/hypermaml demo --out runs/demo

test: install browser
	$(BIN)/python -m pytest -q

# The page's browser test (tests/serve/test_page.py) drives Debian's Chromium and its driver;
# where they cannot be installed the test is skipped and says so.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  chromium-driver) >/dev/null 2>&1 ) || \
	  echo "no Chromium could be installed: the page's browser test will be skipped"

# Everything but the shipped-checkpoint reproductions (tests/shipped), and those alone.
test-fast: install
	$(BIN)/python -m pytest -q -m "not shipped"

test-shipped: install
	$(BIN)/python -m pytest -q -m shipped

# The API reference, generated from the public API's docstrings into docs/api (not committed).
docs: install
	$(BIN)/python docs/build_api.py docs/api

# One classifier run (`hypermaml classify`), started, or resumed when interrupted (the tool
# finds the run's latest complete checkpoint); $(@D) is the run folder, SET extra overrides.
classify_run = $(BIN)/hypermaml classify $< --out $(@D) --resume-if-exists $(SET) \
	$(if $(THREADS),--set run.threads=$(THREADS)) --quiet

# The HyperResNets ablation grid on Fashion-MNIST, one run per configs/classify_fmnist_*.yaml;
# finished runs are skipped and interrupted ones resumed. GRID_SET passes overrides to every run,
# e.g. make fmnist-grid GRID_SET="--set data.train_subset=10000 --set run.threads=2".
GRID_SET ?=
FMNIST_GRID := $(patsubst configs/%.yaml,runs/%/final,$(wildcard configs/classify_fmnist_*.yaml))
fmnist-grid: $(FMNIST_GRID)
$(FMNIST_GRID): SET = $(GRID_SET)
$(FMNIST_GRID): runs/%/final: configs/%.yaml | install
	$(classify_run)

# The paper's Table 5 ablation (switch x enhancement, Omniglot->EMNIST 1-shot) at 1/8 of its
# budget: one run per configs/cross_char_1s_ablation_*.yaml, resumed when interrupted, then its
# best (chosen on validation) scored on the 600 test tasks of seed 0. make -j2 runs two at once.
ABLATION := $(patsubst configs/%.yaml,runs/%/test_seed0.json,$(wildcard configs/cross_char_1s_ablation_*.yaml))
ablation: $(ABLATION)
	@for f in $(ABLATION); do echo "$$f: $$(cat $$f | tr -d '\n' | cut -c1-160)"; done

# THREADS=1 gives each new run one thread (to share the machine with another run); INIT, set per
# target below, starts a run from a pre-trained checkpoint.
THREADS ?=
runs/%/test_seed0.json: configs/%.yaml | install
	$(BIN)/hypermaml train $< $(INIT) --out runs/$* --resume-if-exists \
		$(if $(THREADS),--set train.threads=$(THREADS)) --quiet
	$(BIN)/hypermaml eval runs/$*/best --tasks 600 --seed 0 --json $@

# MAML over HyperResNets (HyperResNets paper, section 4.2): each network is pre-trained as a
# classifier of the training classes, its classifier replaced, then meta-trained with MAML;
# plain Conv4 against HyperConv4 (variant 1) on cross_char and on omniglot, same budget.
HYPER_MAML := $(foreach d,cross_char_1s omniglot_5w1s,$(foreach m,pretrained hyperconv4,runs/$(d)_maml_$(m)/test_seed0.json))
hyper-maml: $(HYPER_MAML)
	@for f in $(HYPER_MAML); do echo "$$f: $$(cat $$f | tr -d '\n' | cut -c1-160)"; done

runs/pretrain_%/final: configs/classify_pretrain_%.yaml | install
	$(classify_run)

# $(call from_pretrained,RUN,PRETRAINED): meta-train RUN from runs/pretrain_PRETRAINED/final
define from_pretrained
runs/$(1)/test_seed0.json: runs/pretrain_$(2)/final
runs/$(1)/test_seed0.json: INIT = --init runs/pretrain_$(2)/final
endef
$(eval $(call from_pretrained,cross_char_1s_maml_pretrained,cross_char_conv4_plain))
$(eval $(call from_pretrained,cross_char_1s_maml_hyperconv4,cross_char_conv4_hyper1))
$(eval $(call from_pretrained,omniglot_5w1s_maml_pretrained,omniglot_conv4_plain))
$(eval $(call from_pretrained,omniglot_5w1s_maml_hyperconv4,omniglot_conv4_hyper1))

# The same second stages for every method on Omniglot->EMNIST (docs/results.md, "Like with
# like"): the stroke-and-framing stage and its control, each from the method's paper-recipe
# checkpoint (ProtoNet's paper-recipe runs are trained first), then scored once on the test split.
STAGES := $(foreach s,1s 5s,$(foreach m,hypermaml maml protonet,$(foreach t,frame control,\
	runs/cross_char_$(s)_$(m)_$(t)/test_seed0.json)))
like-with-like: $(STAGES)
	@for f in $(STAGES); do echo "$$f: $$(cat $$f | tr -d '\n' | cut -c1-160)"; done
define from_start
runs/$(1)/test_seed0.json: INIT = --init $(2)
endef
$(foreach s,1s 5s,$(foreach t,frame control,\
	$(eval $(call from_start,cross_char_$(s)_hypermaml_$(t),checkpoints/cross_char_1s_hypermaml_stage1))\
	$(eval $(call from_start,cross_char_$(s)_maml_$(t),checkpoints/cross_char_$(s)_maml))\
	$(eval $(call from_start,cross_char_$(s)_protonet_$(t),runs/cross_char_$(s)_protonet/best))\
	$(eval runs/cross_char_$(s)_protonet_$(t)/test_seed0.json: runs/cross_char_$(s)_protonet/test_seed0.json)))
$(foreach s,1s 5s,$(eval runs/cross_char_$(s)_protonet/test_seed0.json: INIT =))

# The baselines on standard Omniglot at their published recipes (docs/results.md, "Omniglot"):
# ProtoNet's 60-way episodes (scored on 5-way and, with the same model, 20-way tasks), MAML's
# meta-batch of 32 (5-way) and 16 (20-way), HyperMAML 20-way; each scored once on the test split.
OMNIGLOT := $(foreach r,omniglot_1s_protonet_snell omniglot_5s_protonet_snell omniglot_5w1s_maml_finn \
	omniglot_20w1s_maml_finn omniglot_20w1s_hypermaml,runs/$(r)/test_seed0.json) \
	runs/omniglot_1s_protonet_snell/test_20way_seed0.json runs/omniglot_5s_protonet_snell/test_20way_seed0.json
omniglot-baselines: $(OMNIGLOT)
	@for f in $(OMNIGLOT); do echo "$$f: $$(cat $$f | tr -d '\n' | cut -c1-160)"; done
runs/%/test_20way_seed0.json: runs/%/test_seed0.json
	$(BIN)/hypermaml eval runs/$*/best --n-way 20 --tasks 600 --seed 0 --json $@

# Every natural-image row of the papers (HyperMAML Tables 1, 2 and 7; HyperResNets Tables 7 and
# 8): pre-training where a row starts from it, meta-training, then the test score of its best
# checkpoint. Needs the images (docs/data.md) and, at the papers' budgets, a GPU; one row is
# `make runs/cub_1s_hypermaml/test_seed0.json`.
NATURAL := $(patsubst configs/%.yaml,runs/%/test_seed0.json,$(wildcard \
	configs/cub_*.yaml configs/mini_imagenet_*.yaml configs/mini_to_cub_*.yaml \
	configs/fc100_to_mini_*.yaml))
natural-images: $(NATURAL)
	@for f in $(NATURAL); do echo "$$f: $$(cat $$f | tr -d '\n' | cut -c1-160)"; done
$(foreach s,1s 5s,$(foreach m,hypermaml maml,\
	$(eval $(call from_pretrained,mini_imagenet_$(s)_$(m),mini_imagenet_conv4pool_plain))))
$(foreach s,1s 5s,$(foreach m,hypermaml_resnet12 maml_resnet12 maml_resnet12_plain,\
	$(eval $(call from_pretrained,mini_imagenet_$(s)_$(m),mini_imagenet_resnet12_plain))))
$(foreach s,1s 5s,\
	$(eval $(call from_pretrained,mini_imagenet_$(s)_maml_resnet12_hyper1,mini_imagenet_resnet12_hyper1)))
$(foreach s,1s 5s,$(foreach n,wrn_16_4 wrn_28_4,$(foreach h,plain hyper1,\
	$(eval $(call from_pretrained,fc100_to_mini_$(s)_maml_$(n)_$(h),fc100_$(n)_$(h))))))

lint: install
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs docs/api build dist
