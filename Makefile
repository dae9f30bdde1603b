# The two commands of the README. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test

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

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q
