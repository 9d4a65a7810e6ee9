# Two commands for a fresh clone:  make demo  (the main job)   make test  (the test suite)
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first, on its own, so that the project's range (torch>=2.2,<3) adds nothing.
# On the project's CI machines this pin is the CPU wheel on local disk; elsewhere the package
# index decides which build it is. Set TORCH_SPEC for another build, e.g. TORCH_SPEC="torch==2.13.0+cpu".
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/attncoach train --config configs/tweets-sentiment.yaml

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) bench/main_job.py
	$(PY) bench/train_throughput.py
	$(PY) bench/pretrained_finetune.py

clean:
	rm -rf $(VENV) runs .pytest_cache
