# The commands of the README. Each sets up .venv on first use; `setup` only that.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo scale test

setup: $(BIN)/.installed

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

# The main job on the shipped data: train the demo model, sample 1M synthetic
# fingerprints, evaluate real vs synthetic distractors (report in runs/demo/eval/).
demo: $(BIN)/.installed
	$(BIN)/python train.py --config configs/demo.py
	$(BIN)/python sample.py --workdir runs/demo --n 1000000 --shards 8
	$(BIN)/python evaluate.py --workdir runs/demo

# The paper's 100M point on this machine (configs/demo_100m.py): distil the demo
# run into a one-step sampler of its first block (as faithful as the whole
# network on this data, 3.6x faster), sample 100M rows (25.6 GB), evaluate 10k to 100M.
scale: $(BIN)/.installed
	$(BIN)/python train.py --config configs/demo.py
	$(BIN)/python train.py --config configs/demo_distill.py --workdir runs/demo-1block \
	    --config.train.distill_model.depth=1
	$(BIN)/python evaluate.py --workdir runs/demo-1block --config configs/demo_100m.py

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q
