#!/usr/bin/env bash
# Compares the speed of two visionnet binaries (e.g. before and after a change) on this machine:
# for each model, `visionnet bench` (training at batch 64 unless MODE / BATCH say otherwise) with
# each binary in turn, ROUNDS rounds, then a table of the medians and the speed-up. Needs an
# otherwise idle machine; it is a benchmark, never a test.
#
#   scripts/bench_ab.sh OLD_BINARY NEW_BINARY            # ROUNDS=3 by default
#   MODELS="cnn:10 attn2:6" scripts/bench_ab.sh OLD NEW  # model:timed-steps pairs
#   MODE=infer BATCH=256 scripts/bench_ab.sh OLD NEW     # inference
set -euo pipefail
before=$1
after=$2
rounds=${ROUNDS:-3}
mode=${MODE:-train}
batch=${BATCH:-64}
models=${MODELS:-"cnn:10|attn2:6|attn3:6|attn1:3|cnn --lateral residual:6|cnn --conv inception:6"}
models=${models// /_}
models=${models//|/ }
out=$(mktemp)
for round in $(seq "$rounds"); do
    for spec in $models; do
        model=${spec%%:*}
        model=${model//_/ }
        steps=${spec##*:}
        # the order flips every round, so that neither binary always runs first
        pair=("$before" "$after")
        [ $((round % 2)) -eq 0 ] && pair=("$after" "$before")
        for bin in "${pair[@]}"; do
            # shellcheck disable=SC2086  # the model spec carries its own flags
            json=$("$bin" bench --model $model --mode "$mode" --batch-size "$batch" --warmup 2 --steps "$steps" --json | tail -1)
            echo "$model|$round|$bin|$json" >> "$out"
        done
    done
done
python3 - "$out" "$before" "$after" "$mode" "$batch" <<'PY'
import json, statistics, sys
path, before, after, mode, batch = sys.argv[1:]
rate, paired = {}, {}
for line in open(path):
    model, round_, binary, js = line.rstrip("\n").split("|", 3)
    rate.setdefault((model, binary), []).append(json.loads(js)["images_per_second"])
    paired.setdefault((model, round_), {})[binary] = rate[(model, binary)][-1]
what = "training" if mode == "train" else "inference"
# The host's speed drifts by several percent within minutes (a shared VM), so besides the ratio
# of the medians the table gives the median of each round's own ratio, whose two runs were
# back to back, and the range of those ratios.
print(f"| {what} images/s, batch {batch} | before | after | speed-up | per-round speed-up, median (range) |")
print("|---|---:|---:|---:|---:|")
for model in dict.fromkeys(m for m, _ in rate):
    a, b = statistics.median(rate[(model, before)]), statistics.median(rate[(model, after)])
    ratios = sorted(r[after] / r[before] for (m, _), r in paired.items() if m == model)
    print(
        f"| `{model}` | {a:.1f} | {b:.1f} | {b / a:.2f}x "
        f"| {statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f}) |"
    )
PY
rm -f "$out"
