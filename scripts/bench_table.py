#!/usr/bin/env python3
"""Table of a side-by-side benchmark: visionnet against PyTorch, from the JSON lines that
`visionnet bench --json` and `bench/pytorch_reference.py` print (scripts/bench_vs_pytorch.sh
collects them). Medians over rounds; the ratio is visionnet images/s over PyTorch images/s
(above 1: visionnet is faster); memory is each process's peak resident set during the timed
steps (MiB). Standard library only.

Usage: bench_table.py RESULTS.jsonl [--markdown]
"""

import json
import statistics
import sys
from collections import defaultdict


def load(path):
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{number}: not a JSON object: {e}")
    if not rows:
        sys.exit(f"{path}: no measurements")
    return rows


def engine_label(row):
    if row["engine"] == "pytorch" and row.get("attention"):
        return f"pytorch-{row['attention']}"
    return row["engine"]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    markdown = "--markdown" in sys.argv
    if len(args) != 1:
        sys.exit(__doc__)
    rows = load(args[0])
    speed = defaultdict(list)  # (model, mode, batch, engine) -> images/s
    memory = defaultdict(list)  # same key -> peak MiB
    skipped = {}
    models = []
    for r in rows:
        key = (r["model"], r["mode"], r["batch_size"], engine_label(r))
        if r["model"] not in models:
            models.append(r["model"])
        if "skipped" in r:
            skipped[key] = r["skipped"]
            continue
        speed[key].append(r["images_per_second"])
        memory[key].append(r["peak_rss_bytes"] / 2**20)
    header = ["model", "mode", "batch", "engine", "images/s", "runs", "vs PyTorch", "peak MiB", "vs PyTorch"]
    table = []
    cases = sorted({k[:3] for k in list(speed) + list(skipped)}, key=lambda k: (models.index(k[0]), k[1] != "train", k[2]))
    for model, mode, batch in cases:
        engines = sorted({k[3] for k in list(speed) + list(skipped) if k[:3] == (model, mode, batch)},
                         key=lambda e: (e != "visionnet", e))
        best_torch = max((statistics.median(speed[(model, mode, batch, e)]) for e in engines
                          if e.startswith("pytorch") and speed[(model, mode, batch, e)]), default=None)
        best_torch_mem = min((statistics.median(memory[(model, mode, batch, e)]) for e in engines
                              if e.startswith("pytorch") and memory[(model, mode, batch, e)]), default=None)
        for e in engines:
            key = (model, mode, batch, e)
            if key in skipped:
                table.append([model, mode, str(batch), e, "not run", "0", "", skipped[key], ""])
                continue
            ips = statistics.median(speed[key])
            mib = statistics.median(memory[key])
            ratio = f"{ips / best_torch:.2f}x" if e == "visionnet" and best_torch else ""
            mem_ratio = f"{mib / best_torch_mem:.2f}x" if e == "visionnet" and best_torch_mem else ""
            table.append([model, mode, str(batch), e, f"{ips:.1f}", str(len(speed[key])), ratio, f"{mib:.0f}", mem_ratio])
    print("ratios: visionnet over the fastest PyTorch variant (speed) and the leanest (memory)")
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in table + [header]) for i in range(len(header))]
        for row in [header] + table:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    main()
