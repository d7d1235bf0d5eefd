#!/usr/bin/env python3
"""Table of scripts/bench_real_loop.sh's results: per model and recipe, each engine's training
epoch (images/s) beside its synthetic bench at the same batch size, medians over rounds.

  epoch        trained images over the seconds of the epoch's steps;
  bench        the same engine's synthetic training step (fixed random batch) at that batch;
  epoch/bench  what the real loop keeps of the bench's rate (target: 0.90 or more);
  vs PyTorch   visionnet's epoch over the fastest PyTorch variant's epoch;
  per CPU-s    the same rates over the CPU time of all the process's threads (epoch: the data
               thread included), which a machine shared with other work disturbs less.
Standard library only. Usage: bench_real_loop_table.py RESULTS.jsonl
"""

import json
import statistics
import sys
from collections import defaultdict


def label(r):
    return "visionnet" if r["engine"] == "visionnet" else f"pytorch {r.get('variant') or 'eager'}"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rates = defaultdict(list)  # (model, recipe, engine, kind) -> images/s
    cpu_rates = defaultdict(list)  # same key -> images per CPU-second
    batches, order, data_thread = {}, [], []
    with open(sys.argv[1]) as f:
        for number, line in enumerate(f, 1):
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{sys.argv[1]}:{number}: not a JSON object: {e}")
            case = (r["model"], r["recipe"])
            if case not in order:
                order.append(case)
            batches[case] = r["batch_size"]
            rates[case + (label(r), r["kind"])].append(r["images_per_second"])
            if r.get("data_thread_cpu_seconds") is not None and r.get("cpu_seconds"):
                data_thread.append((case, r["data_thread_cpu_seconds"] / r["cpu_seconds"]))
            if r.get("images_per_cpu_second"):
                cpu_rates[case + (label(r), r["kind"])].append(r["images_per_cpu_second"])
    if not rates:
        sys.exit(f"{sys.argv[1]}: no measurements")
    for case in order:
        shares = [r for r in data_thread if r[0] == case]
        if shares:
            share = statistics.median(s for _, s in shares)
            print(f"{case[0]}, {case[1]} recipe: visionnet's data thread took {100 * share:.1f}% of the epoch's CPU time "
                  f"(median of {len(shares)})")
    print()
    med = lambda k, series=rates: statistics.median(series[k]) if series.get(k) else None
    print("| model | recipe | batch | engine | epoch images/s | bench images/s | epoch/bench | vs PyTorch (epoch) "
          "| epoch per CPU-s | bench per CPU-s | epoch/bench (CPU) | rounds |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in order:
        engines = sorted({k[2] for k in rates if k[:2] == case}, key=lambda e: (e != "visionnet", e))
        best = max((med(case + (e, "epoch")) or 0 for e in engines if e != "visionnet"), default=0)
        for e in engines:
            epoch, bench = med(case + (e, "epoch")), med(case + (e, "bench"))
            cpu_epoch, cpu_bench = med(case + (e, "epoch"), cpu_rates), med(case + (e, "bench"), cpu_rates)
            cells = [
                f"{epoch:.1f}" if epoch else "not run",
                f"{bench:.1f}" if bench else "",
                f"{epoch / bench:.2f}" if epoch and bench else "",
                f"{epoch / best:.2f}x" if e == "visionnet" and epoch and best else "",
                f"{cpu_epoch:.1f}" if cpu_epoch else "",
                f"{cpu_bench:.1f}" if cpu_bench else "",
                f"{cpu_epoch / cpu_bench:.2f}" if cpu_epoch and cpu_bench else "",
                str(len(rates.get(case + (e, "epoch"), []))),
            ]
            print(f"| {case[0]} | {case[1]} | {batches[case]} | {e} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
