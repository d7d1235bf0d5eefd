#!/usr/bin/env bash
# The real loop: one training epoch of `visionnet train` against a plain PyTorch loop
# (bench/pytorch_train_loop.py) over the same images, and each engine's epoch against its
# synthetic bench at the same batch size (`visionnet bench`, bench/pytorch_reference.py).
#
# For every round, model and recipe it runs, each in a fresh process on the same threads:
#   visionnet train --data DATA --val-size 0 --epochs 1 [--config configs/study.toml]
#   bench/pytorch_train_loop.py --recipe RECIPE (each PyTorch variant)
#   visionnet bench --mode train --batch-size B   (B: the recipe's batch, 64 or 128)
# odd rounds visionnet first, even rounds PyTorch first. visionnet's epoch rate is its
# metrics.csv `images_per_second` (trained images over the seconds of the epoch's steps: batch
# assembly on the data thread, augmentation, host-to-tensor copies, metrics and progress
# included; data loading and the test evaluation after the epoch excluded); PyTorch's is the
# same span of its loop (images read into memory first, untimed).
#
# Environment (all optional):
#   MODELS="cnn"                  models (cnn attn1 attn2 attn3)
#   RECIPES="study default"       study: configs/study.toml (Adam, batch 64, no augmentation);
#                                 default: train's defaults (SGD one-cycle, batch 128, crop + flip)
#   ROUNDS=2  THREADS=$(nproc)
#   VARIANTS="eager compile channels_last"   PyTorch variants
#   TRAIN_LIMIT=N                 train on N images instead of all 50,000 (a quick check)
#   BENCH_STEPS=20                timed steps of the synthetic benches
#   DATA=../shared/data/cifar10-jpeg
#   VISIONNET_TORCH_PYTHON=...    a Python with torch (as for scripts/bench_vs_pytorch.sh)
# Output: target/bench/real-loop-<time>.jsonl (raw) and .md (the table).
# A benchmark, never a test: one full epoch takes minutes per engine.
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS=${MODELS:-cnn}
RECIPES=${RECIPES:-"study default"}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-$(nproc)}
VARIANTS=${VARIANTS:-"eager compile channels_last"}
BENCH_STEPS=${BENCH_STEPS:-20}
DATA=${DATA:-../shared/data/cifar10-jpeg}
python=${VISIONNET_TORCH_PYTHON:-target/torch-venv/bin/python}
if ! "$python" -c 'import torch, PIL' 2>/dev/null; then
    echo "no Python with torch and PIL at $python: run scripts/bench_vs_pytorch.sh once (it makes" \
        "target/torch-venv) or set VISIONNET_TORCH_PYTHON" >&2
    exit 1
fi
[[ -d $DATA/train ]] || { echo "$DATA/train: no such folder (set DATA)" >&2; exit 1; }

echo "== building visionnet" >&2
cargo build --release --quiet ${FEATURES:+--features "$FEATURES"}
visionnet=target/release/visionnet
mkdir -p target/bench
out=target/bench/real-loop-$(date -u +%Y%m%dT%H%M%SZ).jsonl
runs=$(mktemp -d target/bench/real-loop-runs.XXXXXX)
trap 'rm -rf "$runs"' EXIT
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "== $cpu; $(nproc) cores, $THREADS threads; raw results: $out" >&2

batch_of() { [[ $1 == study ]] && echo 64 || echo 128; }

run_visionnet() {
    local dir=$runs/$model-$recipe-$round config=()
    [[ $recipe == study ]] && config=(--config configs/study.toml)
    "$visionnet" --threads "$THREADS" train "${config[@]}" --data "$DATA" --model "$model" --val-size 0 \
        --epochs 1 ${TRAIN_LIMIT:+--train-limit "$TRAIN_LIMIT"} --run-dir "$dir" --quiet >&2 &
    local pid=$! cpu
    # The epoch's CPU time, all threads (the data thread included): from the run's tensorboard
    # folder (made just before the first epoch) to its checkpoints folder (made as it ends).
    cpu=$(python3 scripts/proc_cpu_window.py "$pid" "$dir/tensorboard" "$dir/checkpoints" || echo '{}')
    wait "$pid"
    python3 - "$dir/metrics.csv" "$model" "$recipe" "$(batch_of "$recipe")" "$THREADS" "$cpu" \
        "${TRAIN_LIMIT:-50000}" >> "$out" <<'PY'
import csv, json, sys
path, model, recipe, batch, threads, cpu, n = sys.argv[1:]
row = list(csv.DictReader(open(path)))[-1]
window = json.loads(cpu)
cpu = window.get("cpu_seconds")
images = int(n) // int(batch) * int(batch)  # the epoch's full batches
print(json.dumps({"engine": "visionnet", "kind": "epoch", "model": model, "recipe": recipe,
                  "batch_size": int(batch), "threads": int(threads), "images": images,
                  "images_per_second": float(row["images_per_second"]), "cpu_seconds": cpu,
                  "images_per_cpu_second": images / cpu if cpu else None,
                  # threads that ended with the epoch: its data thread
                  "data_thread_cpu_seconds": window.get("ended_threads_cpu_seconds"),
                  "epoch_wall_seconds": window.get("wall_seconds")}))
PY
    rm -rf "$dir"
    "$visionnet" --threads "$THREADS" bench --model "$model" --mode train --batch-size "$(batch_of "$recipe")" \
        --warmup 3 --steps "$BENCH_STEPS" --json | python3 -c '
import json, sys
r = json.loads(sys.stdin.read()); r["kind"] = "bench"; r["recipe"] = sys.argv[1]; print(json.dumps(r))' "$recipe" >> "$out"
}

run_pytorch() {
    local variant
    for variant in $VARIANTS; do
        "$python" bench/pytorch_train_loop.py --model "$model" --recipe "$recipe" --variant "$variant" \
            --data "$DATA" --threads "$THREADS" ${TRAIN_LIMIT:+--train-limit "$TRAIN_LIMIT"} >> "$out" \
            || echo "!! PyTorch $variant $model $recipe failed" >&2
        "$python" bench/pytorch_reference.py --model "$model" --mode train --batch-size "$(batch_of "$recipe")" \
            --variant "$variant" --attention sdpa --warmup 3 --steps "$BENCH_STEPS" --threads "$THREADS" \
            | python3 -c '
import json, sys
r = json.loads(sys.stdin.read()); r["kind"] = "bench"; r["recipe"] = sys.argv[1]; print(json.dumps(r))' "$recipe" >> "$out" \
            || echo "!! PyTorch bench $variant $model failed" >&2
    done
}

for round in $(seq "$ROUNDS"); do
    for model in $MODELS; do
        for recipe in $RECIPES; do
            if ((round % 2)); then
                echo "-- round $round: $model, $recipe recipe (visionnet first)" >&2
                run_visionnet
                run_pytorch
            else
                echo "-- round $round: $model, $recipe recipe (PyTorch first)" >&2
                run_pytorch
                run_visionnet
            fi
        done
    done
done
{
    echo "CPU: $cpu ($(nproc) cores); $THREADS threads; $ROUNDS rounds; ${TRAIN_LIMIT:-50000} training images"
    python3 scripts/bench_real_loop_table.py "$out"
} | tee "${out%.jsonl}.md"
