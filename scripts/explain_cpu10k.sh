#!/usr/bin/env bash
# Heat maps with evidence on the cpu-10k grid (grids/cpu-10k.toml, study-10ep): faithfulness
# of every method for cnn and attn3 (and attn2), the sanity check, and the seed-aware
# comparison cnn vs attn3 and cnn vs attn2. Results as in docs/explanations.md.
#
#   scripts/explain_cpu10k.sh                 # everything, 1000 images, every seed that exists
#   IMAGES=300 MODELS="cnn attn3" scripts/explain_cpu10k.sh
#
# RUNS: the grid's study-10ep folder (scripts/grid_cpu10k.sh trains into results/cpu-10k); OUT: a
# new folder for the results. A model's seeds are those of its runs that have finished
# (summary.json); the checkpoints they need stay on the machine that trained them (results/ in
# git keeps only the records).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-results/cpu-10k/cifar10/study-10ep}
DATA=${DATA:-../shared/data/cifar10-jpeg}
OUT=${OUT:-runs/explain-cpu10k}
IMAGES=${IMAGES:-1000}
SANITY_IMAGES=${SANITY_IMAGES:-16}
STABILITY=${STABILITY:-500}
MODELS=${MODELS:-cnn attn3 attn2}
STABILITY_METHODS=${STABILITY_METHODS:-gradcam,hirescam,eigencam,randomcam}
BIN=${BIN:-target/release/visionnet}
mkdir -p "$OUT"

seeds() { for r in "$RUNS/$1"/seed-*; do [ -f "$r/summary.json" ] && echo "$r"; done; }

for model in $MODELS; do
  first=$(seeds "$model" | head -n1)
  [ -n "$first" ] || { echo "no finished run of $model in $RUNS" >&2; continue; }
  [ -e "$OUT/metrics-$model" ] || /usr/bin/time -v "$BIN" gradcam --checkpoint "$first" --data "$DATA" \
    --samples "$IMAGES" --method all --metrics --out "$OUT/metrics-$model" 2> "$OUT/metrics-$model.time" | tee "$OUT/metrics-$model.txt"
  [ -e "$OUT/sanity-$model" ] || "$BIN" gradcam --checkpoint "$first" --data "$DATA" --samples "$SANITY_IMAGES" \
    --show "$SANITY_IMAGES" --method all --sanity --out "$OUT/sanity-$model" | tee "$OUT/sanity-$model.txt"
done

for other in $MODELS; do
  [ "$other" = cnn ] && continue
  a=$(seeds cnn); b=$(seeds "$other")
  [ -n "$a" ] && [ -n "$b" ] || continue
  [ -e "$OUT/compare-cnn-$other" ] || "$BIN" compare --checkpoint-a $a --checkpoint-b $b --names "cnn,$other" \
    --data "$DATA" --samples 4 --stability "$STABILITY" --method "$STABILITY_METHODS" \
    --out "$OUT/compare-cnn-$other" | tee "$OUT/compare-cnn-$other.txt"
done
