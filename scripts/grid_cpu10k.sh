#!/usr/bin/env bash
# The cpu-10k grid (grids/cpu-10k.toml: 10,000-image subset, 10 epochs of the study's recipe,
# seeds 0-2) into results/cpu-10k, one model at a time (each model's three seeds before the
# next, so that every comparison completes in turn), at the lowest priority. Each finished
# run's records are committed from there (results/.gitignore leaves out checkpoints and event
# files), so a fresh checkout continues where the last one stopped: finished runs are skipped,
# an unfinished one starts again. Then the report: results/cpu-10k/report/.
#
#   scripts/grid_cpu10k.sh                          # the models below, in this order
#   MODELS="cnn-se cnn-eca" scripts/grid_cpu10k.sh  # some of them
#
# `nice` works within one terminal session's scheduling group: started with setsid (its own
# group), the grid competes with everything else as an equal unless its group is lowered too
# (`echo 19 > /proc/<pid>/autogroup`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/visionnet}
MODELS=${MODELS:-cnn attn3 attn2 cnn-se cnn-eca cnn-cbam cnn-gc attn1 cnn-residual cnn-dense cnn-inception cnn-separable}
[ -x "$BIN" ] || cargo build --release
for model in $MODELS; do
    for seed in 0 1 2; do
        nice -n 19 "$BIN" experiment --grid grids/cpu-10k.toml --out results/cpu-10k --models "$model" --seeds "$seed"
    done
done
"$BIN" report results/cpu-10k
