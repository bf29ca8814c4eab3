#!/usr/bin/env bash
# Set up .venv-lmms (first run only) and run the lmms-eval backend tests; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_lmms_eval.sh
.venv-lmms/bin/python -m pytest -q -p no:cacheprovider tests_lmms "$@"
