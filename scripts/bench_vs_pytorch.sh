#!/usr/bin/env bash
# visionnet against PyTorch on this machine, side by side in one run (issue 4's benchmark).
#
# For every model, batch size and round it runs `visionnet bench` and bench/pytorch_reference.py
# one after the other (alternating, each in a fresh process, on the same number of threads), so
# both engines see the same machine state; then prints the table (scripts/bench_table.py).
#
# Environment (all optional):
#   MODELS="cnn attn1 attn2 attn3"  models to time
#   ROUNDS=3                         alternating rounds (the table gives medians)
#   STEPS=20 WARMUP=3                timed and untimed steps per measurement
#   THREADS=$(nproc)                 threads for both engines
#   CASES="train:64 train:128 infer:256"   mode:batch-size pairs
#   VISIONNET_TORCH_PYTHON=...       a Python with torch 2.9.0 (else target/torch-venv is made,
#                                    `pip install torch==2.9.0`, a few GB)
#   FEATURES=...                     cargo features for the visionnet build
# Output: target/bench/vs-pytorch-<time>.jsonl (raw) and .md (the table).
# Never run this as a test: it takes minutes and needs an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS=${MODELS:-"cnn attn1 attn2 attn3"}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-$(nproc)}
CASES=${CASES:-"train:64 train:128 infer:256"}

python=${VISIONNET_TORCH_PYTHON:-}
if [[ -z "$python" ]]; then
    venv=target/torch-venv
    if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
        echo "== installing torch 2.9.0 into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet torch==2.9.0
    fi
    python=$venv/bin/python
fi

echo "== building visionnet" >&2
cargo build --release --quiet ${FEATURES:+--features "$FEATURES"}
visionnet=target/release/visionnet

# A measurement whose process dies (e.g. killed for memory) becomes a "skipped" row with its exit
# status; the run goes on with the others.
failed() {
    local engine=$1 model=$2 attention=$3 mode=$4 batch=$5 status=$6 why
    why="exited with status $status"
    ((status == 137)) && why="killed (status 137: out of memory?)"
    echo "!! $engine $model ${attention:+($attention) }$mode batch $batch: $why" >&2
    printf '{"engine": "%s", "model": "%s", "attention": %s, "mode": "%s", "batch_size": %s, "skipped": "%s"}\n' \
        "$engine" "$model" "$( [[ -n $attention ]] && echo "\"$attention\"" || echo null )" "$mode" "$batch" "$why" >> "$out"
}

mkdir -p target/bench
out=target/bench/vs-pytorch-$(date -u +%Y%m%dT%H%M%SZ).jsonl
echo "== $(nproc) cores, $THREADS threads; raw results: $out" >&2
for round in $(seq "$ROUNDS"); do
    for model in $MODELS; do
        for case in $CASES; do
            mode=${case%%:*}
            batch=${case##*:}
            echo "-- round $round: $model $mode batch $batch" >&2
            "$visionnet" --threads "$THREADS" bench --model "$model" --mode "$mode" --batch-size "$batch" \
                --warmup "$WARMUP" --steps "$STEPS" --json >> "$out" \
                || failed visionnet "$model" "" "$mode" "$batch" $?
            variants=(naive)
            [[ $model == attn1 || $model == attn2 ]] && variants=(naive sdpa)
            for attention in "${variants[@]}"; do
                "$python" bench/pytorch_reference.py --model "$model" --mode "$mode" --batch-size "$batch" \
                    --warmup "$WARMUP" --steps "$STEPS" --threads "$THREADS" --attention "$attention" >> "$out" \
                    || failed pytorch "$model" "$attention" "$mode" "$batch" $?
            done
        done
    done
done
python3 scripts/bench_table.py "$out" --markdown | tee "${out%.jsonl}.md"
