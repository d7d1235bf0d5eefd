#!/usr/bin/env bash
# kill -9 at random moments of a short training run, then `--resume`: every trial must end with
# predictions.csv and summary.json (less its wall-clock fields, train_seconds and
# images_per_second, which differ between any two runs) identical to an uninterrupted run's.
#
#   scripts/kill9_trials.sh [TRIALS=20] [BINARY=target/release/visionnet]
#
# Half the trials kill at a random time (of a run of about 3 s here); the other half wait for a checkpoint write (a
# `.epoch-*.tmp` folder appearing) and kill during it. A run killed before its run.json exists
# has started nothing and is started again; one killed later is resumed (repeatedly, if a
# resume is killed too: it is not). Prints one line per trial and exits non-zero on any
# difference.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-20}
bin=${2:-target/release/visionnet}
work=$(mktemp -d /tmp/visionnet-kill9.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 - "$work/data" <<'PY'
import sys, pathlib, random, struct, zlib
root = pathlib.Path(sys.argv[1]); rng = random.Random(1)
def png(path, side, rgb):
    raw = b"".join(b"\0" + b"".join(bytes(rgb(x, y)) for x in range(side)) for y in range(side))
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
for split, n in [("train", 160), ("test", 40)]:
    for k in range(3):
        d = root / split / f"class{k}"; d.mkdir(parents=True)
        for i in range(n):
            png(d / f"{i:04}.png", 32, lambda x, y: [min(255, max(0, (170 if (x * 2 // 32 + y * 2 // 32 * 2) == (k + c) % 4 else 60) + rng.randint(-25, 25))) for c in range(3)])
PY
args=(--threads 2 train --data "$work/data" --val-size 48 --widths 32,32,64,64 --hidden 64,64,64 --epochs 6
      --batch-size 16 --seed 7 --quiet)
strip() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("train_seconds"); d.pop("images_per_second"); print(json.dumps(d, sort_keys=True))' "$1"; }
start=$(date +%s.%N)
"$bin" "${args[@]}" --run-dir "$work/whole" >/dev/null
span=$(python3 -c "print($(date +%s.%N) - $start)")
echo "uninterrupted run: ${span} s"
ref_summary=$(strip "$work/whole/summary.json")
failed=0
during_write=0
mid_run=0
for t in $(seq 1 "$trials"); do
    run="$work/trial-$t"
    "$bin" "${args[@]}" --run-dir "$run" >/dev/null 2>&1 &
    pid=$!
    how=""
    if (( t % 2 == 0 )); then
        # During a checkpoint write: poll for the temporary folder.
        for _ in $(seq 1 200000); do
            if compgen -G "$run/checkpoints/.epoch-*.tmp" >/dev/null; then break; fi
            kill -0 $pid 2>/dev/null || break
        done
        tmps=$(ls -a "$run/checkpoints" 2>/dev/null | grep -c tmp || true)
        how="while polling for a checkpoint write ($tmps temporary folder seen at the kill)"
    else
        delay=$(python3 -c "import random; print(round(random.uniform(0, $span), 2))")
        sleep "$delay"
        how="after ${delay} s"
    fi
    if kill -9 $pid 2>/dev/null; then
        mid_run=$((mid_run + 1))
        if (( t % 2 == 0 )) && [ "${tmps:-0}" -gt 0 ]; then during_write=$((during_write + 1)); fi
    else
        how="$how (had already finished)"
    fi
    wait $pid 2>/dev/null || true
    state=$(ls "$run/checkpoints" 2>/dev/null | tr '\n' ' ')
    if [ -f "$run/run.json" ]; then
        "$bin" --threads 2 train --resume "$run" --quiet >/dev/null
    else
        rm -rf "$run"
        "$bin" "${args[@]}" --run-dir "$run" >/dev/null
    fi
    if cmp -s "$run/predictions.csv" "$work/whole/predictions.csv" && [ "$(strip "$run/summary.json")" = "$ref_summary" ]; then
        echo "trial $t: killed $how; checkpoints then: ${state:-none}; resumed: identical"
    else
        echo "trial $t: killed $how; checkpoints then: ${state:-none}; resumed: DIFFERS"
        failed=$((failed + 1))
    fi
done
echo "$mid_run of $trials kills landed before the run ended, $during_write of them with a checkpoint being written"
echo "$failed of $trials trials differ"
[ "$failed" -eq 0 ]
