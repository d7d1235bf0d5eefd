#!/usr/bin/env bash
# `visionnet experiment --submit slurm` against a real SLURM: installs Debian's slurm-wlm and
# munge if missing, starts a one-node cluster (munged, slurmctld, slurmd with a temporary
# slurm.conf), then
#   1. submits a 4-run grid of tiny runs (1 epoch) as a job array, two tasks at a time, with a
#      report job after it; waits (bounded); checks that every run finished exactly once, that no
#      more than two tasks ran at once, and that the report was built;
#   2. submits a 1-run grid of 12 epochs, `scancel`s it after its second epoch, resubmits it and
#      checks that the run resumed (its earlier epochs kept, the log says so) rather than
#      restarted;
# and stops the daemons it started, by pid, however it ends. Needs root (CI runs as root).
# A missing or uninstallable SLURM is a failure, never a skip.
#
# Usage: scripts/slurm_test.sh [VISIONNET_BINARY]   (default: target/release/visionnet, built
# if absent). KEEP=1 keeps the temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "slurm_test: FAILED: $*" >&2; exit 1; }
step() { echo "slurm_test: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root: it installs and starts SLURM's daemons"
exe=${1:-target/release/visionnet}
if [ ! -x "$exe" ]; then
    nice cargo build --release
fi
exe=$(realpath "$exe")

started=$(date +%s)
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    step "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || fail "apt-get update failed: cannot install SLURM"
    apt-get install -y -qq slurm-wlm munge >/dev/null || fail "apt-get install slurm-wlm munge failed"
    command -v slurmctld >/dev/null && command -v munged >/dev/null || fail "SLURM is not on the PATH after installing it"
fi
step "SLURM $(slurmctld -V 2>/dev/null | head -1) ready after $(( $(date +%s) - started )) s"

work=$(mktemp -d /tmp/visionnet-slurm.XXXXXX)
daemons=()
jobs_submitted=()
cleanup() {
    local rc=$?
    set +e
    for j in "${jobs_submitted[@]}"; do scancel "$j" 2>/dev/null; done
    # Ours only, newest first, by the pids recorded when they started.
    for (( i=${#daemons[@]}-1; i>=0; i-- )); do
        kill "${daemons[i]}" 2>/dev/null
    done
    for pid in "${daemons[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    if [ "$rc" != 0 ]; then
        for log in "$work"/slurmctld.log "$work"/slurmd.log "$work"/munged.log; do
            [ -f "$log" ] && { echo "--- tail of $log"; tail -n 15 "$log"; }
        done
    fi
    [ "${KEEP:-0}" = 1 ] && echo "slurm_test: kept $work" || rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

# ---- the cluster ----
mkdir -p "$work"/{munge,state,spool,etc}
key=/etc/munge/munge.key
if [ ! -s "$key" ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
fi
chmod 0400 "$key"
munged -F --force --key-file "$key" --socket "$work/munge/munge.socket.2" \
    --pid-file "$work/munge/munged.pid" --log-file "$work/munged.log" --seed-file "$work/munge/seed" \
    2>>"$work/munged.log" &
daemons+=($!)
for _ in $(seq 50); do [ -S "$work/munge/munge.socket.2" ] && break; sleep 0.1; done
[ -S "$work/munge/munge.socket.2" ] || fail "munged did not start"

conf="$work/etc/slurm.conf"
cat > "$conf" <<EOF
ClusterName=visionnet-test
SlurmctldHost=localhost
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket.2
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
KillWait=5
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
NodeName=localhost CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$conf
slurmctld -D -f "$conf" >>"$work/slurmctld.log" 2>&1 &
daemons+=($!)
sleep 1
slurmd -D -N localhost -f "$conf" >>"$work/slurmd.log" 2>&1 &
daemons+=($!)
for _ in $(seq 60); do
    [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break
    sleep 1
done
[ "$(sinfo -h -o %T 2>/dev/null)" = idle ] || fail "the node did not come up idle: $(sinfo 2>&1)"
step "cluster up: $(sinfo -h -o '%P %D %T %c CPUs')"

# ---- a tiny image folder: dark and bright noise (PPM) ----
ppm() { # FILE SIDE dark|bright
    local map
    [ "$3" = dark ] && map=('\200-\377' '\000-\177') || map=('\000-\177' '\200-\377')
    { printf 'P6\n%d %d\n255\n' "$2" "$2"; head -c $(( $2 * $2 * 3 )) /dev/urandom | tr "${map[0]}" "${map[1]}"; } > "$1"
}
images() { # DIR PER_CLASS_TRAIN PER_CLASS_TEST SIDE
    for split in train test; do
        local n=$2; [ $split = test ] && n=$3
        for class in dark bright; do
            mkdir -p "$1/$split/$class"
            for i in $(seq "$n"); do ppm "$1/$split/$class/$i.ppm" "$4" $class; done
        done
    done
}
images "$work/small" 24 8 16
images "$work/large" 400 8 32

grid() { # FILE DATA EPOCHS MODELS... (cnn widths)
    local file=$1 data=$2 epochs=$3; shift 3
    {
        echo "out = \"$(basename "$file" .toml)-out\""
        echo "seeds = [0, 1]"
        echo "[defaults]"
        echo "val-size = 8"
        echo "batch-size = 16"
        echo "hidden = [8, 8, 8]"
        echo "eval-batch-size = 64"
        echo "[datasets.noise]"
        echo "data = \"$data\""
        for m in "$@"; do
            echo "[models.$m]"
            echo "model = \"cnn\""
            [ "$m" = narrow ] && echo "widths = [4, 4, 8, 8]" || echo "widths = [8, 8, 8, 8]"
        done
        echo "[recipes.tiny]"
        echo "optimizer = \"adam\""
        echo "lr = 0.001"
        echo "schedule = \"constant\""
        echo "epochs = $epochs"
    } > "$file"
}
wait_job() { # JOB SECONDS: until it leaves the queue; prints the most tasks seen running at once
    local most=0 n
    for _ in $(seq $(( $2 * 5 ))); do
        [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && { echo "$most"; return 0; }
        n=$(squeue -h -j "$1" -t R 2>/dev/null | wc -l)
        [ "$n" -gt "$most" ] && most=$n
        sleep 0.2
    done
    fail "job $1 still queued after $2 s: $(squeue -j "$1")"
}
submit() { # GRID: submits, prints the job id
    local out
    out=$("$exe" experiment --grid "$1" "${@:2}" 2>&1) || fail "submission failed: $out"
    echo "$out" >&2
    sed -n 's/^submitted job array \([0-9]*\);.*/\1/p' <<<"$out"
}

# ---- 1. a 4-run array, two at a time, and the report after it ----
g1="$work/array.toml"
grid "$g1" "$work/small" 1 wide narrow
out1="$work/array-out"
"$exe" experiment --grid "$g1" --dry-run
t1=$(date +%s)
job=$(submit "$g1" --submit slurm --max-parallel 2 --cpus-per-task 1 --time 00:10:00 --report)
[ -n "$job" ] || fail "no job id"
jobs_submitted+=("$job")
grep -q -- "--array=0,1,2,3%2" "$out1/slurm/array.sbatch" || fail "the script's array is not 0,1,2,3%2: $(grep array "$out1/slurm/array.sbatch")"
most=$(wait_job "$job" 600)
step "array $job done in $(( $(date +%s) - t1 )) s; at most $most tasks ran at once"
[ "$most" -le 2 ] || fail "$most tasks ran at once; --max-parallel 2 allows 2"
for i in 0 1 2 3; do
    log="$out1/slurm/logs/${job}_$i.log"
    [ -f "$log" ] || fail "no log of task $i ($log)"
    run=$(sed -n "s/^task $i of 4 runs in .*: \(.*\)$/\1/p" "$log")
    [ -n "$run" ] || fail "task $i's log does not name its run: $(cat "$log")"
    [ -f "$out1/$run/summary.json" ] || fail "task $i: $run has no summary.json"
    rows=$(( $(wc -l < "$out1/$run/metrics.csv") - 1 ))
    [ "$rows" = 1 ] || fail "$run has $rows epochs in metrics.csv, not 1"
    trained=$(cat "$out1"/slurm/logs/"${job}"_*.log | grep -c "^$run: test accuracy" || true)
    [ "$trained" = 1 ] || fail "$run was trained $trained times"
    step "task ${job}_$i: $(grep "^$run: test accuracy" "$log")"
done
for _ in $(seq 100); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
[ -f "$out1/report/report.html" ] || fail "the report job built no report: $(cat "$out1"/slurm/logs/*-report.log 2>/dev/null)"
step "report built by the report job: $out1/report/report.html"
"$exe" experiment --grid "$g1" --status

# ---- 2. scancel mid-run, resubmit, resume ----
g2="$work/resume.toml"
grid "$g2" "$work/large" 12 wide
out2="$work/resume-out"
job=$(submit "$g2" --submit slurm --seeds 0 --cpus-per-task 2)
jobs_submitted+=("$job")
run="$out2/noise/tiny/wide/seed-0"
rows() { [ -f "$1" ] && echo $(( $(wc -l < "$1") - 1 )) || echo 0; }
# After the second epoch's row in metrics.csv (written after its checkpoint).
for _ in $(seq 1500); do
    [ "$(rows "$run/metrics.csv")" -ge 2 ] && break
    [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && fail "job $job ended before its second epoch: $(cat "$out2"/slurm/logs/*.log)"
    sleep 0.2
done
[ "$(rows "$run/metrics.csv")" -ge 2 ] || fail "no second epoch within 300 s"
scancel "$job"
wait_job "$job" 120 >/dev/null
[ -f "$run/summary.json" ] && fail "the run finished before scancel took effect: make its epochs longer"
before=$(( $(wc -l < "$run/metrics.csv") - 1 ))
cp "$run/metrics.csv" "$work/metrics-before.csv"
step "scancel $job after epoch $before of 12"
status=$("$exe" experiment --grid "$g2" --seeds 0 --status)
echo "$status"
grep -q "interrupted after epoch $before" <<<"$status" || fail "--status does not say interrupted after epoch $before"
job2=$(submit "$g2" --submit slurm --seeds 0 --cpus-per-task 2)
jobs_submitted+=("$job2")
grep -q -- "--array=0$" "$out2/slurm/array.sbatch" || fail "the resubmitted array is not the one unfinished run"
wait_job "$job2" 600 >/dev/null
log="$out2/slurm/logs/${job2}_0.log"
[ -f "$run/summary.json" ] || fail "the resubmitted run did not finish: $(cat "$log")"
grep -q "resuming after epoch $before" "$log" || fail "the resubmitted task did not resume after epoch $before: $(cat "$log")"
rows=$(( $(wc -l < "$run/metrics.csv") - 1 ))
[ "$rows" = 12 ] || fail "metrics.csv has $rows epochs, not 12"
head -n $(( before + 1 )) "$run/metrics.csv" | cmp -s - "$work/metrics-before.csv" \
    || fail "the epochs trained before scancel changed: it restarted instead of resuming"
step "job $job2 resumed the run: $(grep -m1 "resuming after epoch" "$log" | sed 's/^ *//'); epochs 1-$before kept, 12 in all"
grep "took over the stale lock" "$log" || true
"$exe" experiment --grid "$g2" --seeds 0 --status
step "passed in $(( $(date +%s) - started )) s"
