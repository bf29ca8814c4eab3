#!/usr/bin/env bash
# Create .venv with pinned torch/torchvision and omnisift (editable) with every extra the tests use
# (media, bench, eval, train) plus test tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import omnisift, torchvision, av, matplotlib, accelerate, tqdm, pytest, ruff" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch 2.14.1 + torchvision 0.29.1: the pair transformers' Qwen2.5-Omni video processor runs with.
  .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  .venv/bin/python -m pip install -q -e ".[media,bench,show,eval,train,dev]"
fi
