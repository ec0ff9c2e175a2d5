#!/usr/bin/env bash
# One command for a GPU machine with no network (docs/gpu.md): install the carried wheels, build NATTEN's CUDA
# backend for this GPU (time-boxed; NATTEN's flex backend otherwise, and the rows' `backend` says which), run the
# GPU tests, then the sweep and the model-level preset, writing results/gpu/<gpu-name>.csv, figures and the verdict.
#
#   bash scripts/gpu_sweep.sh                  # the paper preset, float32/bfloat16/float16, forward and
#                                              # forward_backward, eager, inductor, export (hours on one GPU)
#   GPU_SWEEP=lease bash scripts/gpu_sweep.sh  # a subset that fits a few minutes (what a lent machine ran)
#
# Knobs (environment): WHEELS (folder of carried wheels, default .whl), NATTEN_SRC (a NATTEN sdist .tar.gz to
# build; default: the one in $WHEELS/src, if any), NATTEN_BUILD_S (time box of that build, default 1800; 0 skips
# it), OUT_DIR (where CSVs, figures and logs go, default results/gpu), PYTHON (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
WHEELS="${WHEELS:-.whl}"
OUT_DIR="${OUT_DIR:-results/gpu}"
NATTEN_BUILD_S="${NATTEN_BUILD_S:-1800}"
GPU_SWEEP="${GPU_SWEEP:-full}"
mkdir -p "$OUT_DIR"
log() { echo "== $(date -u +%H:%M:%S) $*"; }

# 1. Carried wheels (pure-Python natten, anything else missing), into a private folder on PYTHONPATH.
site="$(mktemp -d)/site"
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    log "installing $(ls "$WHEELS"/*.whl | wc -l) carried wheel(s)"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$WHEELS"/*.whl || exit 1
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"

# 2. NATTEN's CUDA kernels for this GPU's architecture only, within the time box.
NATTEN_SRC="${NATTEN_SRC:-$(ls "$WHEELS"/src/natten-*.tar.gz 2> /dev/null | head -1)}"
if [ -n "$NATTEN_SRC" ] && [ "$NATTEN_BUILD_S" -gt 0 ]; then
    arch="$("$PYTHON" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')"
    log "building NATTEN's CUDA backend for sm $arch from $NATTEN_SRC (at most ${NATTEN_BUILD_S} s)"
    NATTEN_CUDA_ARCH="$arch" NATTEN_N_WORKERS="$(nproc)" timeout "$NATTEN_BUILD_S" \
        "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" "$NATTEN_SRC" \
        > "$OUT_DIR/natten-build.log" 2>&1 \
        && log "NATTEN built with libnatten" \
        || log "NATTEN's CUDA build failed or ran out of time (see $OUT_DIR/natten-build.log): its flex backend is used"
else
    log "no NATTEN CUDA build (NATTEN_SRC empty or NATTEN_BUILD_S=0): NATTEN's flex backend is used"
fi
"$PYTHON" -c "import natten, torch; print('natten', natten.__version__, 'libnatten:', natten.HAS_LIBNATTEN if hasattr(natten, 'HAS_LIBNATTEN') else '?', '| torch', torch.__version__, '|', torch.cuda.get_device_name(0))"

# 3. The GPU tests (CUDA code paths, the Triton kernel on the GPU).
log "GPU tests"
"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_triton_local.py 2>&1 | tee "$OUT_DIR/tests.log" | tail -15

# 4. The sweep, then figures, report and the verdict (printed at the end of the sweep).
gpu="$("$PYTHON" -c 'import re, torch; print(re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-"))')"
csv="$OUT_DIR/$gpu.csv"
common=(--devices cuda --threads 1 --case-timeout 240 --no-plots --out "$csv")
if [ "$GPU_SWEEP" = lease ]; then
    log "lease sweep -> $csv"
    "$PYTHON" run_bench.py --preset gpu-lease "${common[@]}"
    "$PYTHON" run_bench.py --preset gpu-lease --variants natten,flex-neighborhood,triton-local --runtimes inductor \
        --dtypes bfloat16 --resolutions 56 --heads 3 "${common[@]}"
else
    log "paper preset on the GPU -> $csv"
    "$PYTHON" run_bench.py --preset paper --dtypes float32,bfloat16,float16 --passes forward,forward_backward \
        --runtimes eager,inductor,export --batch 1,8,64 "${common[@]}"
    log "model level"
    "$PYTHON" run_bench.py models --devices cuda --dtypes float32,bfloat16 --batch 1,64 --out "$OUT_DIR/$gpu-models.csv"
fi
log "figures and report"
BENCH_PLOTS_DIR="$OUT_DIR/plots" "$PYTHON" run_bench.py plot "$csv" --formats png
BENCH_PLOTS_DIR="$OUT_DIR/plots" "$PYTHON" run_bench.py report "$csv"
log "done: $csv"
