#!/usr/bin/env bash
# Builds the environment of benchmarks/media_decode.py: the published reader (qwen-omni-utils 0.0.9 with
# decord, as the paper's inference script uses it) beside omnisift, WITHOUT making either our dependency.
#
# The venv lives in benchmarks/.media-env (gitignored). It sees the project venv's packages (torch 2.14.1,
# torchvision 0.29.1, av, transformers) through a .pth file, so both readers run on the SAME torch, PyAV and
# thread settings, and nothing is installed into the project venv. Only qwen-omni-utils (without its
# dependency list, which would pull another av), decord and librosa (the published audio loader) go in.
#
#   bash benchmarks/media_env.sh                 # then:
#   benchmarks/.media-env/bin/python benchmarks/media_decode.py
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
project_python="${PROJECT_PYTHON:-$root/.venv/bin/python}"
env_dir="$here/.media-env"

if [ ! -x "$project_python" ]; then
  echo "project python $project_python not found: create the project venv first (pip install -e .)," \
       "or set PROJECT_PYTHON" >&2
  exit 1
fi
base="$("$project_python" -c 'import sys; print(sys._base_executable)')"
"$base" -m venv "$env_dir"
site_dir="$("$env_dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$project_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site_dir/project-venv.pth"
"$env_dir/bin/python" -c 'import torch; assert torch.__version__.startswith("2.14.1"), torch.__version__'

"$env_dir/bin/pip" install --no-deps "qwen-omni-utils==0.0.9"
"$env_dir/bin/pip" install "librosa" "decord==0.6.0"
"$env_dir/bin/python" -c 'import decord, qwen_omni_utils, librosa; print("decord", decord.__version__, "librosa", librosa.__version__)'
