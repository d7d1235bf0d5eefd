#!/usr/bin/env bash
# Peak memory of one training step (forward, backward, Adam) with lean against naive pixel
# attention, side by side, at several image sizes: shows that the lean implementation's memory
# grows linearly with the pixel count H*W while the naive one's grows with its square.
#
# Each measurement is its own process (`visionnet bench --memory --json`), so one measurement's
# freed memory cannot hide in the next one's peak. A naive run the bench refuses (its attention
# matrices could exhaust the machine's memory) is reported as "refused".
#
# Usage: scripts/memory-bench.sh [VISIONNET_BINARY]
#   MODELS="attn1 attn2"  SIZES="16 24 32 40"  BATCH=4  (environment, defaults shown)
# Prints a Markdown table; MiB are step peaks: what the step added to the resident set. The plain
# CNN (`cnn`, no attention) at the same size is the linear baseline: the conv activations that
# every model keeps.
set -euo pipefail

bin="${1:-target/release/visionnet}"
models="${MODELS:-attn1 attn2}"
sizes="${SIZES:-16 24 32 40}"
batch="${BATCH:-4}"

if [[ ! -x "$bin" ]]; then
    echo "memory-bench: $bin is not an executable visionnet binary (build with cargo build --release)" >&2
    exit 2
fi

# Step peak in MiB of one configuration, or "refused" (with the bench's reason on stderr).
measure() {
    local model="$1" impl="$2" size="$3" out
    if out="$("$bin" bench --memory --json --model "$model" --attn-impl "$impl" --image-size "$size" --batch-size "$batch" 2>&1)"; then
        python3 -c "import json, sys; print('%.1f' % (json.loads(sys.argv[1])['step_peak_bytes'] / 2**20))" "$out"
    else
        echo "memory-bench: $model $impl ${size}x${size}: $out" >&2
        echo "refused"
    fi
}

echo "| model | batch | image | H*W (first layer) | cnn MiB | lean MiB | lean MiB per 1k pixels | naive MiB | naive / lean |"
echo "|---|---|---|---|---|---|---|---|---|"
declare -A cnn
for size in $sizes; do
    cnn[$size]="$(measure cnn lean "$size")"
done
for model in $models; do
    for size in $sizes; do
        lean="$(measure "$model" lean "$size")"
        naive="$(measure "$model" naive "$size")"
        pixels=$((size * size))
        python3 - "$model" "$batch" "$size" "$pixels" "${cnn[$size]}" "$lean" "$naive" <<'EOF'
import sys
model, batch, size, pixels, plain, lean, naive = sys.argv[1:]
def num(s):
    try:
        return float(s)
    except ValueError:
        return None
l, n = num(lean), num(naive)
per_k = f"{l / int(pixels) * 1000:.1f}" if l is not None else "-"
ratio = f"{n / l:.1f}x" if l and n is not None else "-"
print(f"| {model} | {batch} | {size}x{size} | {pixels} | {plain} | {lean} | {per_k} | {naive} | {ratio} |")
EOF
    done
done
