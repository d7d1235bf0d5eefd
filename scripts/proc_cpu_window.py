#!/usr/bin/env python3
"""CPU seconds a running process spends between two events, each the appearance of a path.

Polls /proc/PID/task/*/schedstat (time on a CPU per thread, nanoseconds; Linux) every 20 ms
from the moment START exists until END exists, and prints one JSON object with the CPU seconds
all threads spent in between (a thread that ends in between counts up to its last poll), the
wall-clock seconds, and the CPU seconds of the threads that ended in between.
scripts/bench_real_loop.sh uses it to measure one `visionnet train` epoch: START =
RUN_DIR/tensorboard (made just before the first epoch), END = RUN_DIR/checkpoints (made when
the epoch ends); the thread that ends in between is the epoch's data thread. Standard library
only.

Usage: proc_cpu_window.py PID START END
"""

import json
import os
import sys
import time


def task_times(pid):
    times = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                times[tid] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return times


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    pid, start, end = sys.argv[1:]
    while not os.path.exists(start):
        if task_times(pid) is None:
            sys.exit(f"process {pid} ended before {start} appeared")
        time.sleep(0.02)
    began, first = time.perf_counter(), task_times(pid) or {}
    last = dict(first)
    while not os.path.exists(end):
        now = task_times(pid)
        if now is None:
            sys.exit(f"process {pid} ended before {end} appeared")
        last.update(now)
        time.sleep(0.02)
    final = task_times(pid) or {}
    last.update(final)
    cpu = sum(ns - first.get(tid, 0) for tid, ns in last.items()) / 1e9
    # Threads that ended inside the window: for a `visionnet train` epoch, its data thread
    # (spawned as the epoch starts to build the batches, joined as it ends), so this is what
    # the data thread cost.
    ended = [tid for tid in last if tid not in final]
    ended_cpu = sum(last[tid] - first.get(tid, 0) for tid in ended) / 1e9
    print(json.dumps({"cpu_seconds": cpu, "wall_seconds": time.perf_counter() - began, "threads": len(last),
                      "ended_threads": len(ended), "ended_threads_cpu_seconds": ended_cpu}))


if __name__ == "__main__":
    main()
