#!/usr/bin/env bash
# Create .venv-lmms: omnisift (editable, media+eval+dev) with lmms-eval 0.7.3 for the lmms-eval backend
# (omnisift.lmms_eval) and its tests (tests_lmms/). Separate from .venv because lmms-eval's own
# requirements do not fit ours. Idempotent.
#
# Why not `pip install lmms-eval==0.7.3` with its dependencies:
#   - it pins av<16 (we run av 18 in .venv) and filelock 4 breaks it (it patches filelock._api, gone in 4);
#   - it pulls ~50 packages the CLI, our model and our tasks never import (wandb==0.25.0, ruff>=0.16.4,
#     sentence_transformers, openai, yt-dlp, pre-commit, timm, spacy-free NLP metrics, ...), minutes of
#     install for nothing the tests use.
# So lmms-eval goes in with --no-deps, plus exactly what `lmms-eval --model omnisift --tasks omnisift_*`
# imports: accelerate, datasets, evaluate, sacrebleu, loguru, tenacity, pytz, pyyaml, pytablewriter, and
# filelock<4. transformers stays on 5.23 (lmms-eval asks >=4.39.2 only). A task of lmms-eval's own
# that imports something else may need that package added by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-lmms
# A failing step (pip included) stops the script with a non-zero status and this line, not silence.
trap 'status=$?; echo "setup_lmms_eval.sh: FAILED (exit $status) at line $LINENO: $BASH_COMMAND; $VENV is incomplete: fix the error above and rerun" >&2' ERR
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# Installed, and omnisift imported from this checkout (not another worktree's editable install).
check='import importlib.util as u, pathlib, sys
names = ["lmms_eval", "accelerate", "datasets", "evaluate", "sacrebleu", "loguru", "pytablewriter", "pytest", "av"]
if any(u.find_spec(n) is None for n in names): sys.exit(1)
origin = pathlib.Path(u.find_spec("omnisift").origin).resolve()
sys.exit(origin.parents[2] != pathlib.Path.cwd().resolve())'
if ! "$VENV/bin/python" -c "$check" >/dev/null 2>&1; then
  constraints="$(mktemp)"
  trap 'rm -f "$constraints"' EXIT
  printf '%s\n' "torch==2.14.1" "torchvision==0.29.1" "transformers>=5.23,<5.24" "filelock>=3.16,<4" >"$constraints"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch 2.14.1 + torchvision 0.29.1 from the local wheels, never an unpinned torch.
  "$VENV/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  "$VENV/bin/python" -m pip install -q -c "$constraints" -e ".[media,eval,dev]"
  "$VENV/bin/python" -m pip install -q --no-deps "lmms-eval==0.7.3"
  "$VENV/bin/python" -m pip install -q -c "$constraints" \
    "accelerate>=1.10,<1.16" "datasets>=2.19" "evaluate>=0.4" "sacrebleu>=1.5" loguru "tenacity>=8.3" \
    pytz pyyaml pytablewriter "filelock>=3.16,<4"
fi
# pip can print ERROR lines (e.g. its resolver's conflict notes) and still exit 0: check the result itself.
if ! "$VENV/bin/python" -c "$check"; then
  echo "setup_lmms_eval.sh: FAILED: $VENV lacks one of the packages lmms-eval needs, or imports omnisift from" \
    "another checkout (see the pip output above); fix it and rerun" >&2
  exit 1
fi
echo "setup_lmms_eval.sh: $VENV is ready (lmms-eval 0.7.3, omnisift from $(pwd))"
