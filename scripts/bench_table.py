#!/usr/bin/env python3
"""Table of a side-by-side benchmark: visionnet against PyTorch, from the JSON lines that
`visionnet bench --json` and `bench/pytorch_reference.py` print (scripts/bench_vs_pytorch.sh
collects them). Standard library only.

Per model, mode and batch size, one row per engine (PyTorch: one per variant, eager / compile /
channels_last, times the naive / sdpa attention kernels for attn1 and attn2), medians over the
rounds:
  images/s       the median step's images per second;
  vs PyTorch     visionnet's images/s over the fastest PyTorch row (above 1: visionnet faster);
  GFLOP/s        nominal FLOPs per step (forward x3 for training, x1 for inference; direct-conv
                 FLOPs for every conv, Winograd's saved multiplications included) per second,
                 with the share of the FP32 FMA peak (`visionnet bench --peak`) when the results
                 hold a peak measurement;
  process MiB    the whole process's resident peak during the timed steps (VmHWM): mostly the
                 library's fixed footprint (libtorch and oneDNN for PyTorch);
  steps add MiB  what the timed steps add: that peak minus the resident size just before them
                 (rss_before_bytes): activations, gradients, workspaces;
  and for both memory figures visionnet's over the leanest PyTorch row.
A peak that could not be reset (peak_reset false) is the process's lifetime peak: marked with *.

Usage: bench_table.py RESULTS.jsonl [--markdown]
"""

import json
import statistics
import sys
from collections import defaultdict

MIB = 2**20


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
    if row["engine"] != "pytorch":
        return row["engine"]
    label = f"pytorch {row.get('variant') or 'eager'}"
    return f"{label} {row['attention']}" if row.get("attention") else label


def step_passes(mode):
    return 3 if mode == "train" else 1


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    markdown = "--markdown" in sys.argv
    if len(args) != 1:
        sys.exit(__doc__)
    rows = load(args[0])
    speed = defaultdict(list)  # (model, mode, batch, engine) -> images/s
    process = defaultdict(list)  # same key -> whole-process peak MiB
    added = defaultdict(list)  # same key -> what the timed steps added, MiB
    unreset = set()
    skipped = {}
    flops = {}  # model -> nominal forward FLOPs per image (visionnet's count)
    peaks, on_cpu_peaks, peak_info = [], [], None
    models = []
    for r in rows:
        if r.get("kind") == "peak":
            peaks.append(r["gflops_per_second"])
            if r.get("on_cpu_gflops_per_second"):
                on_cpu_peaks.append(r["on_cpu_gflops_per_second"])
            peak_info = r
            continue
        key = (r["model"], r["mode"], r["batch_size"], engine_label(r))
        if r["model"] not in models:
            models.append(r["model"])
        if "skipped" in r:
            skipped[key] = r["skipped"]
            continue
        if r.get("forward_flops_per_image"):
            flops[r["model"]] = r["forward_flops_per_image"]
        speed[key].append(r["images_per_second"])
        process[key].append(r["peak_rss_bytes"] / MIB)
        added[key].append(max(r["peak_rss_bytes"] - r["rss_before_bytes"], 0) / MIB)
        if not r.get("peak_reset", True):
            unreset.add(key)
    peak = statistics.median(peaks) if peaks else None
    header = ["model", "mode", "batch", "engine", "images/s", "runs", "vs PyTorch", "GFLOP/s",
              "process MiB", "vs PyTorch", "steps add MiB", "vs PyTorch"]
    table = []
    cases = sorted({k[:3] for k in list(speed) + list(skipped)},
                   key=lambda k: (models.index(k[0]), k[1] != "train", k[2]))
    for model, mode, batch in cases:
        engines = sorted({k[3] for k in list(speed) + list(skipped) if k[:3] == (model, mode, batch)},
                         key=lambda e: (e != "visionnet", e))
        torch_keys = [(model, mode, batch, e) for e in engines if e.startswith("pytorch") and speed[(model, mode, batch, e)]]
        best = lambda f, series: f((statistics.median(series[k]) for k in torch_keys), default=None)
        best_speed, lean_process, lean_added = best(max, speed), best(min, process), best(min, added)
        for e in engines:
            key = (model, mode, batch, e)
            if key in skipped:
                table.append([model, mode, str(batch), e, "not run", "0", "", "", skipped[key], "", "", ""])
                continue
            ips, mib, add = (statistics.median(s[key]) for s in (speed, process, added))
            ours = e == "visionnet"
            ratio = lambda a, b: f"{a / b:.2f}x" if ours and b else ""
            gflops = ""
            if model in flops:
                g = ips * step_passes(mode) * flops[model] / 1e9
                gflops = f"{g:.1f}" + (f" ({100 * g / peak:.0f}%)" if peak else "")
            star = "*" if key in unreset else ""
            table.append([model, mode, str(batch), e, f"{ips:.1f}", str(len(speed[key])), ratio(ips, best_speed),
                          gflops, f"{mib:.0f}{star}", ratio(mib, lean_process), f"{add:.0f}{star}", ratio(add, lean_added)])
    print("speed: visionnet over the fastest PyTorch row; memory: over the leanest PyTorch row")
    print("process MiB: the whole process's resident peak; steps add MiB: that peak minus the resident size before the timed steps")
    if peak:
        print(f"FP32 FMA peak: {peak:.1f} GFLOP/s ({peak_info['path']} path, {peak_info['threads']} threads, "
              f"median of {len(peaks)}"
              + (f"; {statistics.median(on_cpu_peaks):.1f} over the threads' time on a CPU" if on_cpu_peaks else "")
              + "); GFLOP/s are nominal (direct-conv FLOPs, training 3x forward), % of the wall-clock peak")
    if markdown:
        print()
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
