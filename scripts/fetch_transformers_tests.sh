#!/usr/bin/env bash
# Fetch transformers' own Qwen2.5-Omni and Qwen3-Omni-MoE model tests (and the shared test code they import) into
# .cache/transformers-tests/<commit>/, where tests/test_transformers_suite.py (-m slow) finds them, and
# their extra dependencies (parameterized, librosa, httpx) into .cache/transformers-test-deps (a pip
# --target folder put on PYTHONPATH by that test; the project venv is left alone).
# They are not in the wheel, and the sdist ships only the top-level tests/*.py; nothing fetched here
# is ever committed (.cache/ is gitignored).
#
# What it assembles (the set tests/test_transformers_suite.py was run on):
#   1. a sparse checkout of COMMIT: tests/models/qwen2_5_omni, tests/models/qwen3_omni_moe, tests/generation, tests/exporters,
#      tests/utils, tests/pipelines, the top-level tests/*.py and utils/test_module;
#   2. over it, the top-level tests/*.py (test_modeling_common.py, ...) of the sdist of the installed
#      transformers version, so the shared mixins match the library under test.
# COMMIT defaults to the newest commit whose tests we could read offline (5.16.0.dev0, 2026-08-19; it holds
# both families' tests and both import and run on the installed 5.23); with internet, `--commit v5.23.0`
# (the release tag of the installed version) is the better choice. Without GitHub, point
# TRANSFORMERS_GIT_URL at any local clone or mirror that holds COMMIT.
#
# Usage: scripts/fetch_transformers_tests.sh [--commit SHA_OR_TAG] [--python PY]
#   TRANSFORMERS_GIT_URL overrides the repository (default: GitHub huggingface/transformers).
set -euo pipefail
cd "$(dirname "$0")/.."

commit=decba1d2ea4ed3cbf0495d1828abad4b2dba1846
python=.venv/bin/python
while [ $# -gt 0 ]; do
    case "$1" in
        --commit) commit=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        *) echo "unknown argument $1 (use --commit SHA_OR_TAG, --python PY)" >&2; exit 2 ;;
    esac
done
url=${TRANSFORMERS_GIT_URL:-https://github.com/huggingface/transformers.git}
version=$("$python" -c "import transformers; print(transformers.__version__)")
dest=.cache/transformers-tests/$commit
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

git -C "$work" init -q repo
git -C "$work/repo" remote add origin "$url"
git -C "$work/repo" sparse-checkout set --no-cone \
    '/tests/*.py' '/tests/models/__init__.py' '/tests/models/qwen2_5_omni/' '/tests/models/qwen3_omni_moe/' '/tests/generation/' \
    '/tests/exporters/' '/tests/utils/' '/tests/pipelines/' '/utils/test_module/'
git -C "$work/repo" fetch -q --depth 1 --filter=blob:none origin "$commit"
git -C "$work/repo" checkout -q FETCH_HEAD
resolved=$(git -C "$work/repo" rev-parse HEAD)

"$python" -m pip download -q "transformers==$version" --no-deps --no-binary :all: -d "$work/sdist"
tar xzf "$work/sdist/transformers-$version.tar.gz" -C "$work/sdist" "transformers-$version/tests"
cp "$work/sdist/transformers-$version/tests/"*.py "$work/repo/tests/"

rm -rf "$dest"
mkdir -p "$dest"
cp -r "$work/repo/tests" "$work/repo/utils" "$dest/"
cat > "$dest/SOURCE.json" <<EOF
{"commit": "$resolved", "requested": "$commit", "repository": "$url",
 "sdist_top_level_tests": "transformers==$version"}
EOF
deps=.cache/transformers-test-deps
"$python" -c "import numpy; print('numpy==' + numpy.__version__)" > "$work/constraints.txt"
"$python" -m pip install -q --target "$deps" -c "$work/constraints.txt" parameterized librosa httpx
# drop what the venv already has, so the folder on PYTHONPATH never shadows the venv's own versions
"$python" - "$deps" <<'PY'
import importlib.metadata, pathlib, shutil, sys
deps = pathlib.Path(sys.argv[1])
for info in deps.glob("*.dist-info"):
    name = importlib.metadata.Distribution.at(info).metadata["Name"]
    try:
        importlib.metadata.distribution(name)  # the venv's (deps is not on sys.path here)
    except importlib.metadata.PackageNotFoundError:
        continue
    for entry in {line.split(",")[0].split("/")[0] for line in (info / "RECORD").read_text().splitlines()}:
        target = deps / entry
        if entry not in ("", "..") and target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
PY
echo "transformers tests of $resolved (top-level tests/*.py from the $version sdist) in $dest"
