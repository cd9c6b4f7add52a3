#!/usr/bin/env bash
# ZeRO-2/ZeRO-3 bf16 training steps through transfer.engine at the Qwen1.5-0.5B and Qwen3-4B
# shapes on one lent H100/H200 GPU; prints tokens/s and MFU, one line per config (< 6 min).
#
# What the GPU machine needs: its python3 (3.12, torch 2.11+cu130, transformers 5.x, numpy,
# ninja, psutil, py-cpuinfo, msgpack, einops, tqdm, nvidia-ml-py are in its image) plus
# deepspeed, hjson, pydantic (+ pydantic_core, annotated_types, typing_inspection), which are
# NOT in its image and cannot be downloaded there. Prepare them here, once, then carry them:
#
#   bench/gpu_check.sh --prepare      # on this machine: fills .gpu_site/ (~30 MB, git-ignored
#                                     # through .git/info/exclude)
#   device run: carry [".gpu_site"], command "bash bench/gpu_check.sh"
#
# .gpu_site/ holds the pure-Python packages copied from this project's .venv (deepspeed
# 0.19.8, hjson, pydantic, annotated_types, typing_inspection) and a pydantic_core wheel for
# CPython 3.12 / manylinux x86_64 unpacked in place. No DeepSpeed op is JIT-compiled: the
# configs use torch's AdamW ("torch_adam": true).
#
# Other arguments are passed to bench/gpu_check.py (e.g. --shapes qwen3-4b --steps 5).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
SITE="$REPO/.gpu_site"
PY="${PYTHON:-python3}"

if [ "${1:-}" = "--prepare" ]; then
    set -e
    VENV_SITE="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    CORE_VERSION="$(.venv/bin/python -c 'import pydantic_core; print(pydantic_core.__version__)')"
    rm -rf "$SITE" && mkdir -p "$SITE/_wheels"
    for pkg in deepspeed hjson pydantic annotated_types typing_inspection; do
        cp -r "$VENV_SITE/$pkg" "$SITE/"
        cp -r "$VENV_SITE/$pkg"-*.dist-info "$SITE/" 2>/dev/null || true
    done
    find "$SITE" -name __pycache__ -type d -prune -exec rm -rf {} +
    .venv/bin/python -m pip download --disable-pip-version-check -q --no-deps \
        --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$SITE/_wheels" "pydantic_core==$CORE_VERSION"
    for wheel in "$SITE"/_wheels/*.whl; do .venv/bin/python -m zipfile -e "$wheel" "$SITE"; done
    rm -rf "$SITE/_wheels"
    grep -qxF '/.gpu_site/' .git/info/exclude 2>/dev/null || echo '/.gpu_site/' >> .git/info/exclude
    du -sh "$SITE"
    exit 0
fi

if ! "$PY" -c "import deepspeed" >/dev/null 2>&1; then
    if [ -d "$SITE" ]; then
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "deepspeed is not importable and $SITE is missing: run 'bench/gpu_check.sh --prepare'" \
             "where pip works and carry .gpu_site" >&2
        exit 3
    fi
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-/tmp/torch_extensions}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import deepspeed, torch, transformers; print('deepspeed', deepspeed.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)" 2>&1 | grep -v '^\[20'
# 350 s hard limit keeps the whole check under 6 minutes even if a config hangs.
timeout 350 "$PY" -u bench/gpu_check.py "$@"
