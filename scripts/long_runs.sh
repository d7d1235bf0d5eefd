#!/usr/bin/env bash
# Issue 17's long runs, in priority order, at the lowest priority: the recipe A/B
# (grids/recipe-ab.toml into results/recipe-ab), then Table 1 on full CIFAR-10
# (grids/table1-cifar10.toml into results/table1-cifar10): the study's recipe first, then the
# rest. Every run checkpoints each epoch, so the same command continues after a session's end:
# finished runs are skipped, an unfinished one resumes from its last epoch. Commit each finished
# run's records as they come (results/.gitignore leaves out checkpoints and event files).
#
#   setsid nohup scripts/long_runs.sh >> runs/long_runs.log 2>&1 &
#   pkill -STOP -f "visionnet experiment"   # pause for a benchmark; -CONT resumes
#
# `nice` acts only within a scheduling group, and setsid starts a group of its own, so the
# script also lowers its group (autogroup) to leave the CPU to everything else.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/visionnet}
[ -x "$BIN" ] || cargo build --release
echo 19 > "/proc/$$/autogroup" 2>/dev/null || true
nice -n 19 "$BIN" experiment --grid grids/recipe-ab.toml --out results/recipe-ab --quiet
nice -n 19 "$BIN" experiment --grid grids/table1-cifar10.toml --recipes study --quiet
nice -n 19 "$BIN" experiment --grid grids/table1-cifar10.toml --quiet
