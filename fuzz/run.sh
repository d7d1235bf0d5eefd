#!/usr/bin/env bash
# Runs the afl.rs fuzz targets: `fuzz/run.sh [SECONDS] [TARGET...]` (default 600 s each, every
# target), at most two at a time at `nice -n 10`. Each fuzzer: 10 s timeout per input (a hang),
# 2 GiB memory limit (an allocation above it is a crash). Findings land in
# fuzz/out/TARGET/default/{crashes,hangs}; the summary line per target gives run time,
# executions, crashes and hangs (from fuzzer_stats). Needs `cargo install cargo-afl`.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pickle safetensors image toml records targz cifar)
nice -n 10 cargo afl build --release
export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
run_one() {
    local t=$1
    rm -rf "out/$t"
    mkdir -p "out/$t"
    nice -n 10 cargo afl fuzz -V "$secs" -t 10000 -m 2048 -i "corpus/$t" -o "out/$t" \
        "target/release/$t" > "out/$t.log" 2>&1 || true
    local s=out/$t/default/fuzzer_stats
    if [ -f "$s" ]; then
        awk -v t="$t" -F' *: *' '
            $1=="run_time"{r=$2} $1=="execs_done"{e=$2} $1=="saved_crashes"{c=$2}
            $1=="saved_hangs"{h=$2} $1=="corpus_count"{q=$2}
            END{printf "%-12s %6s s  %10s execs  %4s crashes  %4s hangs  corpus %s\n", t, r, e, c, h, q}' "$s"
    else
        echo "$t: no fuzzer_stats (see fuzz/out/$t.log)"
    fi
}
i=0
for t in "${targets[@]}"; do
    run_one "$t" &
    i=$((i + 1))
    if [ $((i % 2)) -eq 0 ]; then wait; fi
done
wait
