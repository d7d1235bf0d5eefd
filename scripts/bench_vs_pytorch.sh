#!/usr/bin/env bash
# visionnet against PyTorch on this machine, side by side in one run (issue 4's benchmark).
#
# For every model, batch size and round it runs `visionnet bench` and bench/pytorch_reference.py
# (every PyTorch variant: eager, compile, channels_last; naive and sdpa attention for attn1/attn2)
# one after the other, each in a fresh process on the same number of threads; odd rounds run
# visionnet first, even rounds PyTorch first, so neither engine always meets the machine in the
# same state. Each round also measures the FP32 FMA peak (`visionnet bench --peak`). Then it
# prints the table (scripts/bench_table.py), headed by the CPU's model name and flags.
#
# Environment (all optional):
#   MODELS="cnn attn1 attn2 attn3"  models to time
#   ROUNDS=3                         alternating rounds (the table gives medians)
#   STEPS=20 WARMUP=3                timed and untimed steps per measurement
#   THREADS=$(nproc)                 threads for both engines
#   CASES="train:64 train:128 infer:256"   mode:batch-size pairs
#   VARIANTS="eager compile channels_last"   PyTorch variants (see bench/pytorch_reference.py)
#   VISIONNET_TORCH_PYTHON=...       a Python with torch (else target/torch-venv is made with
#                                    `pip install torch==2.15.0`, the CPU wheel, about 200 MB,
#                                    and numpy, pillow for scripts/bench_real_loop.sh;
#                                    only the `tch` device needs 2.9.0)
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
VARIANTS=${VARIANTS:-"eager compile channels_last"}
TORCH_VERSION=2.15.0

python=${VISIONNET_TORCH_PYTHON:-}
if [[ -z "$python" ]]; then
    venv=target/torch-venv
    if [[ $("$venv/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null) != "$TORCH_VERSION" ]]; then
        echo "== installing torch $TORCH_VERSION into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu \
            || "$venv/bin/pip" install --quiet "torch==$TORCH_VERSION"
        # numpy and Pillow for bench/pytorch_train_loop.py (scripts/bench_real_loop.sh), which
        # reads the JPEG copy into memory.
        "$venv/bin/pip" install --quiet numpy pillow
    fi
    python=$venv/bin/python
fi

echo "== building visionnet" >&2
cargo build --release --quiet ${FEATURES:+--features "$FEATURES"}
visionnet=target/release/visionnet

# A measurement whose process dies (e.g. killed for memory) becomes a "skipped" row with its exit
# status; the run goes on with the others.
failed() {
    local engine=$1 model=$2 attention=$3 mode=$4 batch=$5 status=$6 variant=${7:-} why
    why="exited with status $status"
    ((status == 137)) && why="killed (status 137: out of memory?)"
    [[ $model == attn1 || $model == attn2 ]] || attention=""
    echo "!! $engine $model ${variant:+$variant }${attention:+($attention) }$mode batch $batch: $why" >&2
    printf '{"engine": "%s", "model": "%s", "attention": %s, "variant": %s, "mode": "%s", "batch_size": %s, "skipped": "%s"}\n' \
        "$engine" "$model" "$( [[ -n $attention ]] && echo "\"$attention\"" || echo null )" \
        "$( [[ -n $variant ]] && echo "\"$variant\"" || echo null )" "$mode" "$batch" "$why" >> "$out"
}

mkdir -p target/bench
out=target/bench/vs-pytorch-$(date -u +%Y%m%dT%H%M%SZ).jsonl
echo "== $(nproc) cores, $THREADS threads; raw results: $out" >&2
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
flags=$(grep -m1 -o -w -E 'avx2|fma|avx512f|avx512bw|avx512vl|avx512_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ' || true)
torch_version=$("$python" -c 'import torch; print(torch.__version__)')
echo "== $cpu; $(nproc) cores, $THREADS threads; torch $torch_version; raw results: $out" >&2

run_visionnet() {
    "$visionnet" --threads "$THREADS" bench --model "$model" --mode "$mode" --batch-size "$batch" \
        --warmup "$WARMUP" --steps "$STEPS" --json >> "$out" \
        || failed visionnet "$model" "" "$mode" "$batch" $?
}

run_pytorch() {
    local attentions=(naive) attention variant
    [[ $model == attn1 || $model == attn2 ]] && attentions=(naive sdpa)
    for variant in $VARIANTS; do
        for attention in "${attentions[@]}"; do
            "$python" bench/pytorch_reference.py --model "$model" --mode "$mode" --batch-size "$batch" \
                --warmup "$WARMUP" --steps "$STEPS" --threads "$THREADS" --attention "$attention" \
                --variant "$variant" >> "$out" \
                || failed pytorch "$model" "$attention" "$mode" "$batch" $? "$variant"
        done
    done
}

for round in $(seq "$ROUNDS"); do
    "$visionnet" --threads "$THREADS" bench --peak --json >> "$out" || echo "!! the peak benchmark failed" >&2
    for model in $MODELS; do
        for case in $CASES; do
            mode=${case%%:*}
            batch=${case##*:}
            if ((round % 2)); then
                echo "-- round $round: $model $mode batch $batch (visionnet first)" >&2
                run_visionnet
                run_pytorch
            else
                echo "-- round $round: $model $mode batch $batch (PyTorch first)" >&2
                run_pytorch
                run_visionnet
            fi
        done
    done
done
{
    echo "CPU: $cpu ($(nproc) cores; flags: $flags); $THREADS threads; torch $torch_version;"
    echo "visionnet $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $ROUNDS rounds of $STEPS steps after $WARMUP warm-up"
    python3 scripts/bench_table.py "$out" --markdown
} | tee "${out%.jsonl}.md"
