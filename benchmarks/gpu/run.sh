#!/usr/bin/env bash
# The GPU run kit in one command: install the carried wheels, check the GPU code paths, then run
# every benchmark at the GPU scale, sized to end within DEADLINE seconds (default 470) on one
# H100. Writes one JSON per stage and log.txt into OUT_DIR (default: $OUT, else
# benchmarks/results/gpu), the page report.py makes of them into PAGE (default
# /tmp/ssl4gie-benchmarks.md), and prints timestamped progress lines, every stage's table and
# the page's targets.
#
#   bash benchmarks/gpu/run.sh [OUT_DIR]             # on the GPU machine (see README.md here)
#   bash benchmarks/gpu/run.sh --dry-run [OUT_DIR]   # the same stages on CPU at tiny sizes
#
# A stage that fails or runs out of time loses only its own JSON. Exit status: the number of
# stages that failed (0: all ran). PYTHON picks the interpreter (default python3).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT_DIR=${1:-${OUT:-$ROOT/benchmarks/results/gpu}}
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd) || exit 2
cd "$ROOT" || exit 2
PAGE=${PAGE:-/tmp/ssl4gie-benchmarks.md}
PYTHON=${PYTHON:-python3}
DEADLINE=${DEADLINE:-470}
SITE=${SITE:-/tmp/ssl4gie-site}
LOG=$OUT_DIR/log.txt
STAGE_LOG=$(mktemp)
FAILED=0
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
: >"$LOG"

say() { echo "[$(date -u +%H:%M:%S) +${SECONDS}s] $*" | tee -a "$LOG"; }

# stage NAME LIMIT_S COMMAND...: run with a time limit cut to what DEADLINE leaves; show the
# table it prints (or the end of its log when it fails).
stage() {
    local name=$1 limit=$2 left rc
    shift 2
    left=$((DEADLINE - SECONDS - 10))
    if [ "$left" -lt 20 ]; then
        say "skip $name: ${left}s left before the deadline"
        FAILED=$((FAILED + 1))
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    say "start $name (limit ${limit}s)"
    timeout -k 10 "$limit" "$@" >"$STAGE_LOG" 2>&1
    rc=$?
    cat "$STAGE_LOG" >>"$LOG"
    if [ "$rc" -eq 0 ]; then
        awk '/ scale, (cpu|cuda)\]$/ {show = 1} show' "$STAGE_LOG"
        say "done $name"
    else
        tail -n 15 "$STAGE_LOG"
        [ "$rc" -eq 124 ] && say "FAILED $name: out of time (${limit}s)" || say "FAILED $name: exit $rc"
        FAILED=$((FAILED + 1))
    fi
}

# The wheels of .whl/ (benchmarks/gpu/build_wheels.py) into SITE, unless (dry run) the
# packages already import.
NEEDED="import kornia, segmentation_models_pytorch, jsonargparse, pycocotools, nibabel"
if [ "$DRY" -eq 1 ] && "$PYTHON" -c "$NEEDED" 2>/dev/null; then
    say "dry run: the packages import; no wheels installed"
elif ls .whl/*.whl >/dev/null 2>&1; then
    say "installing $(ls .whl/*.whl | wc -l) wheels into $SITE"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl >>"$LOG" 2>&1 || say "FAILED: pip install of .whl/*.whl"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
    say "no .whl/ here: run benchmarks/gpu/build_wheels.py and carry .whl"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
command -v nvidia-smi >/dev/null && nvidia-smi -L | tee -a "$LOG"
"$PYTHON" -c "import sys, torch, ssl4gie; print('python', sys.version.split()[0], 'torch', \
torch.__version__, 'cuda', torch.cuda.is_available(), 'lightly', \
__import__('importlib.util').util.find_spec('lightly') is not None)" 2>&1 | tee -a "$LOG"

B=benchmarks
J() { echo --json "$OUT_DIR/$1.json"; }
if [ "$DRY" -eq 1 ]; then
    TINY="--batch 4 --size 32 --warmup 0 --steps 1 --backbones test_resnet"
    stage checks 120 "$PYTHON" $B/gpu/check.py --size 32 --batch 2 --frame-size 64 \
        --backbones test_resnet vit_tiny_patch16_224 $(J gpu_checks)
    stage input_pipeline 120 "$PYTHON" $B/input_pipeline.py --frames 4 --frame-sizes 64 \
        --size 32 --batch 2 --warmup 0 --steps 1 --crops 500 $(J input_pipeline)
    stage pretrain_throughput 120 "$PYTHON" $B/pretrain_throughput.py $TINY --methods byol \
        --frames 4 $(J pretrain_throughput)
    stage pretrain_steps 120 "$PYTHON" $B/pretrain_steps.py $TINY --methods simclr mae \
        $(J pretrain_steps)
    stage fast_path 120 "$PYTHON" $B/fast_path.py $TINY $(J fast_path)
    stage finetune_steps 120 "$PYTHON" $B/finetune_steps.py $TINY --batch 2 \
        --tasks classification detection $(J finetune_steps)
    stage load_backbone 120 "$PYTHON" $B/load_backbone.py --backbones resnet18 --warmup 0 \
        --steps 1 $(J load_backbone)
else
    # Most important first; the limits add up to more than DEADLINE, which cuts the last ones.
    stage checks 150 "$PYTHON" $B/gpu/check.py --gpu $(J gpu_checks)
    stage input_pipeline 120 "$PYTHON" $B/input_pipeline.py --gpu --frames 128 --warmup 2 \
        --steps 6 $(J input_pipeline)
    stage pretrain_throughput 150 "$PYTHON" $B/pretrain_throughput.py --gpu \
        --methods barlow_twins --backbones resnet50 --warmup 3 --steps 10 $(J pretrain_throughput)
    stage pretrain_steps 120 "$PYTHON" $B/pretrain_steps.py --gpu --warmup 3 --steps 8 \
        --methods barlow_twins mocov3 mae $(J pretrain_steps)
    stage fast_path 90 "$PYTHON" $B/fast_path.py --gpu --backbones resnet50 --warmup 2 \
        --steps 6 $(J fast_path)
    stage finetune_steps 45 "$PYTHON" $B/finetune_steps.py --gpu --backbones resnet50 \
        --warmup 2 --steps 5 --tasks classification segmentation $(J finetune_steps)
    stage load_backbone 30 "$PYTHON" $B/load_backbone.py --gpu \
        --backbones resnet50 vit_base_patch16_224 $(J load_backbone)
fi

if ls "$OUT_DIR"/*.json >/dev/null 2>&1; then
    "$PYTHON" $B/report.py --json "$OUT_DIR"/*.json --out "$PAGE" >>"$LOG" 2>&1 \
        && sed -n '/^## Targets/,/^## How/p' "$PAGE" | sed '$d' \
        || say "FAILED: report.py"
fi
rm -f "$STAGE_LOG"
say "end: $FAILED stage(s) failed; JSON and log.txt in $OUT_DIR, page in $PAGE"
exit "$FAILED"
