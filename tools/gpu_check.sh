#!/usr/bin/env bash
# The GPU check (docs/performance.md, "On a GPU"): on one GPU, in under 10 minutes,
#   1. the GPU tests (tests/engine/test_cuda.py and the CUDA tests of the inference API);
#   2. `hypermaml bench` at 28x28 (Omniglot's shape) and 84x84 (mini-ImageNet's), Conv4,
#      fp32 and bf16, meta-batches of 32 tasks, 600 test tasks in batches of 50;
#   3. two processes sharing the GPU over gloo (torchrun), for the collectives: the bench's
#      training phase, with its all-reduce timed alone;
#   4. the shipped checkpoints scored on the GPU (600 test tasks, seed 0), each compared with
#      its CPU figure (checkpoints/NAME/test_seed0.json): PASS when within the CPU interval.
# Everything lands in OUT (default: gpu_check/): *.json, *.txt and summary.txt.
#
# usage: tools/gpu_check.sh [--dry] [OUT]
#   --dry: the same steps on the CPU with a few tasks, 28x28 only and no GPU tests (what
#          `make test` runs, so the script cannot rot between the sessions that have a GPU).
# Needs $HYPERMAML_DATA for steps 1 and 4.
set -euo pipefail

DRY=0
if [ "${1:-}" = "--dry" ]; then DRY=1; shift; fi
OUT=${1:-gpu_check}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python}
HM=("$PYTHON" -m hypermaml)
if [ "$DRY" = 1 ]; then
  DEVICE=cpu; EPISODES=2; TASKS=2; BATCH=2; META=2; PRECISIONS="bf16"; METHODS=hypermaml
  DATASETS=omniglot; CHECKPOINTS="cross_char_1s_hypermaml"
else
  DEVICE=cuda; EPISODES=3200; TASKS=600; BATCH=50; META=32; PRECISIONS="fp32 bf16"
  METHODS=hypermaml,maml-1,maml-5,protonet; DATASETS="omniglot mini_imagenet"
  CHECKPOINTS="cross_char_1s_hypermaml cross_char_5s_hypermaml cross_char_1s_maml
    cross_char_1s_protonet omniglot_5w1s_hypermaml"
fi
step() { echo "== $(date +%T) $*" | tee -a "$OUT/summary.txt"; }

step "machine"
"$PYTHON" - <<'PY' | tee -a "$OUT/summary.txt"
import torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"torch {torch.__version__}, {gpu}, {torch.get_num_threads()} CPU threads")
PY

if [ "$DRY" = 0 ]; then
  step "1. GPU tests"
  "$PYTHON" -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py \
    tests/inference/test_task.py -k "cuda or gpu" 2>&1 | tail -5 | tee -a "$OUT/summary.txt"
fi

step "2. bench, Conv4, 28x28 and 84x84"
for precision in $PRECISIONS; do
  for dataset in $DATASETS; do
    "${HM[@]}" bench --device "$DEVICE" --dataset "$dataset" --precision "$precision" \
      --meta-batch "$META" --train-episodes "$EPISODES" --eval-tasks "$TASKS" \
      --eval-batch "$BATCH" --methods "$METHODS" --in-process \
      --json "$OUT/bench_${dataset}_${precision}.json" | tee "$OUT/bench_${dataset}_${precision}.txt"
  done
done

step "3. two processes over gloo"
HYPERMAML_DIST_BACKEND=gloo OMP_NUM_THREADS=1 "$PYTHON" -m torch.distributed.run --standalone \
  --nproc-per-node 2 -m hypermaml bench --device "$DEVICE" --methods hypermaml,protonet \
  --phases train --meta-batch "$META" --train-episodes "$EPISODES" \
  --json "$OUT/bench_2proc.json" | tee "$OUT/bench_2proc.txt"

step "4. shipped checkpoints on $DEVICE against their CPU figures"
for name in $CHECKPOINTS; do
  "${HM[@]}" eval "checkpoints/$name" --device "$DEVICE" --tasks "$TASKS" --seed 0 \
    --json "$OUT/eval_$name.json"
done
"$PYTHON" - "$OUT" "$TASKS" $CHECKPOINTS <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
out, tasks, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for name in names:
    here = json.load(open(f"{out}/eval_{name}.json"))
    cpu = json.load(open(f"checkpoints/{name}/test_seed0.json"))
    if tasks != cpu["n_tasks"]:
        verdict = f"not compared ({tasks} tasks, the CPU figure has {cpu['n_tasks']})"
    else:
        ok = abs(here["accuracy"] - cpu["accuracy"]) <= cpu["ci95"]
        verdict = "PASS" if ok else "FAIL"
    print(f"{name}: {here['device']} {here['accuracy']:.2f} ± {here['ci95']:.2f}, "
          f"cpu {cpu['accuracy']:.2f} ± {cpu['ci95']:.2f}, "
          f"{1000 * here['seconds_per_task'] * here['n_tasks']:.0f} ms for the tasks: {verdict}")
PY
step "done"
