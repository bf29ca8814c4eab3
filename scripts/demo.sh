#!/usr/bin/env bash
# Set up (first run only) and run the demo; extra arguments go to `omnisift demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/omnisift demo "$@"
