#!/usr/bin/env python3
"""PyTorch reference for `visionnet bench`: the same models, timed the same way.

Each model here has visionnet's shapes, parameter count and initialisation scheme (PyTorch's
defaults, which are burn's: Kaiming-uniform with bound 1/sqrt(fan_in)); each training step is
forward + cross-entropy + backward + Adam (lr 1e-3) on a fixed random batch, as in
`src/bench/`. Printed as one JSON object per measurement (one line each), so that
`scripts/bench_vs_pytorch.sh` can set them beside visionnet's.

Models (see src/model/ for the definitions, with shapes):
  cnn    4 x (3x3 conv no bias -> BatchNorm -> ReLU -> 2x2 max-pool), widths 32/64/128/256,
         classifier 1024 -> 512 -> 256 -> 128 -> classes
  attn1  cnn + per-channel pixel attention after each conv (6 scalars shared by all layers)
  attn2  cnn + SAGAN-style pixel attention after each conv (1x1 q, k: C -> C/8, v: C -> C)
  attn3  cnn + attention between feature maps after each conv, concatenated (2C channels)

Pixel attention (attn1, attn2) can be computed two ways (`--attention`):
  naive  softmax(q k^T) v with the N x N matrix kept for backward, as the study's code would;
  sdpa   torch.nn.functional.scaled_dot_product_attention (PyTorch's fused CPU kernel, which
         does not keep the matrix): PyTorch at its best.

Each runs as one of three variants (`--variant`), as a performance-minded PyTorch user would try:
  eager          the model as written, NCHW tensors;
  compile        torch.compile(model) (TorchInductor: on a CPU it generates C++/OpenMP kernels
                 with gcc and calls oneDNN for convs and matrix products), default mode; the
                 optimizer step stays eager (Adam's foreach implementation). Compilation happens
                 in the untimed warm-up steps (at least 3), its time is reported as
                 compile_seconds;
  channels_last  eager, with the model and the batch in torch.channels_last (NHWC) memory
                 format, which lets oneDNN skip its layout reorders.

Memory: rss_before_bytes is the resident size (VmRSS) just before the timed steps (model,
optimizer state, batch, warm-up and compilation done; glibc's free heap handed back first with
malloc_trim, as visionnet's bench does, so that memory the warm-up freed but the allocator kept
does not count as "before"); peak_rss_bytes is the process's resident
peak (VmHWM) during the timed steps, reset just before them through /proc/self/clear_refs
(Linux; peak_reset says whether that worked, else it is the lifetime peak). What the timed
steps add is their difference (scripts/bench_table.py shows both).
"""

import argparse
import json
import math
import os
import re
import resource
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=["cnn", "attn1", "attn2", "attn3"])
    p.add_argument("--mode", default="train", choices=["train", "infer"], help="what to time")
    p.add_argument("--batch-size", type=int, default=64, help="images per step")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--steps", type=int, default=20, help="timed steps (the median is reported)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    p.add_argument("--classes", type=int, default=10, help="classes of the output layer")
    p.add_argument("--attention", default="naive", choices=["naive", "sdpa"], help="pixel attention kernel")
    p.add_argument("--variant", default="eager", choices=["eager", "compile", "channels_last"],
                   help="how PyTorch runs the model (see above)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for name in ("batch_size", "steps", "threads", "classes"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def build(args):
    import torch
    from torch import nn
    import torch.nn.functional as F

    def pixel_attention(q, k, v, scale):
        """q, k: [g, n, dk]; v: [g, n, dv] -> [g, n, dv]."""
        if args.attention == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, scale=scale)
        scores = torch.bmm(q, k.transpose(1, 2)) * scale  # [g, n, n]
        return torch.bmm(torch.softmax(scores, dim=-1), v)  # [g, n, dv]

    class ScalarQkv(nn.Module):
        """Arch 1's six scalars, U(-1, 1) as a 1x1x1 Conv3d."""

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(3).uniform_(-1, 1))
            self.bias = nn.Parameter(torch.empty(3).uniform_(-1, 1))

    class Arch1(nn.Module):
        def forward(self, x, qkv):
            b, c, h, w = x.shape
            t = x.reshape(b * c, h * w, 1)  # [b*c, n, 1]: one sequence of scalars per channel
            q, k, v = (t * qkv.weight[i] + qkv.bias[i] for i in range(3))
            y = pixel_attention(q, k, v, 1.0)  # [b*c, n, 1]
            return x + y.reshape(b, c, h, w)

    class Arch2(nn.Module):
        def __init__(self, c, r=8):
            super().__init__()
            self.q = nn.Conv2d(c, c // r, 1)
            self.k = nn.Conv2d(c, c // r, 1)
            self.v = nn.Conv2d(c, c, 1)
            self.gamma = nn.Parameter(torch.ones(1))
            self.dk = c // r

        def forward(self, x, _shared):
            b, c, h, w = x.shape
            q = self.q(x).flatten(2).transpose(1, 2)  # [b, n, c/r]
            k = self.k(x).flatten(2).transpose(1, 2)  # [b, n, c/r]
            v = self.v(x).flatten(2).transpose(1, 2)  # [b, n, c]
            y = pixel_attention(q, k, v, 1.0 / math.sqrt(self.dk))  # [b, n, c]
            return x + self.gamma * y.transpose(1, 2).reshape(b, c, h, w)

    class Arch3(nn.Module):
        def __init__(self, n, d=64):
            super().__init__()
            self.q = nn.Linear(n, d, bias=False)
            self.k = nn.Linear(n, d, bias=False)
            self.d = d

        def forward(self, x, _shared):
            b, c, h, w = x.shape
            t = x.reshape(b, c, h * w)  # [b, c, n]
            a = torch.softmax(self.q(t) @ self.k(t).transpose(1, 2) / math.sqrt(self.d), dim=-1)  # [b, c, c]
            return torch.cat([x, (a @ t).reshape(b, c, h, w)], dim=1)  # [b, 2c, h, w]

    class ConvUnit(nn.Module):
        def __init__(self, c_in, c_out, size, attention):
            super().__init__()
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            if attention == "attn1":
                self.attn, c_norm = Arch1(), c_out
            elif attention == "attn2":
                self.attn, c_norm = Arch2(c_out), c_out
            elif attention == "attn3":
                self.attn, c_norm = Arch3(size * size), 2 * c_out
            else:
                self.attn, c_norm = None, c_out
            self.norm = nn.BatchNorm2d(c_norm)
            self.c_norm = c_norm

        def forward(self, x, shared):
            x = self.conv(x)
            if self.attn is not None:
                x = self.attn(x, shared)
            return F.max_pool2d(F.relu(self.norm(x)), 2)

    class Net(nn.Module):
        def __init__(self, model, classes):
            super().__init__()
            self.shared = ScalarQkv() if model == "attn1" else None
            units, c_in, size = [], 3, 32
            for width in (32, 64, 128, 256):
                unit = ConvUnit(c_in, width, size, model)
                units.append(unit)
                c_in, size = unit.c_norm, size // 2
            self.units = nn.ModuleList(units)
            dims = [c_in * size * size, 512, 256, 128]
            self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
            self.out = nn.Linear(dims[-1], classes)

        def forward(self, x):
            for unit in self.units:
                x = unit(x, self.shared)
            x = x.flatten(1)
            for layer in self.hidden:
                x = F.relu(layer(x))
            return self.out(x)

    return Net(args.model, args.classes)


def status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def trim_allocator():
    """Hands glibc's free heap memory back to the system (malloc_trim), so that the resident size
    read next counts live memory only: memory the warm-up steps freed but the allocator kept
    would otherwise count as "before" and hide from what the timed steps add. visionnet's bench
    does the same. Returns whether it ran (glibc only)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def naive_matrix_bytes(args):
    """Bytes of the N x N attention matrices naive pixel attention keeps alive at once in a
    step (training: scores, softmax output and their gradient, 3 per layer; inference: 2), or 0."""
    if args.attention != "naive" or args.model not in ("attn1", "attn2"):
        return 0
    total, size = 0, 32
    for width in (32, 64, 128, 256):
        n = size * size
        groups = args.batch_size * (width if args.model == "attn1" else 1)
        total += (3 if args.mode == "train" else 2) * groups * n * n * 4
        size //= 2
    return total


def available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def main():
    args = parse_args()
    needed, available = naive_matrix_bytes(args), available_bytes()
    if available is not None and needed > available / 2:
        # Running it would push the machine into the out-of-memory killer: report instead.
        print(json.dumps({
            "engine": "pytorch", "model": args.model, "attention": args.attention, "variant": args.variant,
            "mode": args.mode, "batch_size": args.batch_size, "threads": args.threads,
            "skipped": f"naive attention matrices need about {needed / 2**30:.1f} GiB, "
                       f"more than half of the {available / 2**30:.1f} GiB available",
        }))
        return
    import torch

    # Cap the address space at what is mapped now (torch's libraries) plus three quarters of the
    # available memory: a step that needs more (naive or math-fallback attention over 1024
    # pixels) fails with an allocation error, reported below, instead of waking the kernel's
    # out-of-memory killer.
    if available is not None:
        limit = status_bytes("VmSize") + available * 3 // 4
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    try:
        run(args, torch)
    except (RuntimeError, MemoryError) as e:
        if "alloc" not in str(e).lower() and not isinstance(e, MemoryError):
            raise
        print(json.dumps({
            "engine": "pytorch", "model": args.model, "attention": args.attention, "variant": args.variant,
            "mode": args.mode, "batch_size": args.batch_size, "threads": args.threads,
            "skipped": f"out of memory (capped at 3/4 of the {available / 2**30:.1f} GiB available): "
                       f"{allocation_failure(e)}",
        }))


def allocation_failure(error):
    """The size a failed allocation asked for, from PyTorch's message, or its first line."""
    asked = re.search(r"allocate (\d+) bytes", str(error))
    if asked:
        return f"one allocation asked for {int(asked.group(1)) / 2**30:.1f} GiB"
    return str(error).splitlines()[0][:160]


def run(args, torch):
    """Builds the model, runs the warm-up and timed steps, prints the JSON line."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    net = build(args)
    params = sum(p.numel() for p in net.parameters())
    x = torch.randn(args.batch_size, 3, 32, 32)
    y = torch.arange(args.batch_size) % args.classes
    if args.variant == "channels_last":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model = torch.compile(net) if args.variant == "compile" else net

    def train_step():
        optim.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optim.step()

    def infer_step():
        with torch.inference_mode():
            model(x)

    if args.mode == "train":
        net.train()
        step = train_step
    else:
        net.eval()
        step = infer_step
    # The first call compiles (forward and, in training, the backward graph); BatchNorm's
    # training-mode counters can cause one recompile on the second: three untimed steps at least.
    warmup = max(args.warmup, 3) if args.variant == "compile" else args.warmup
    started = time.perf_counter()
    if warmup:
        step()
    first_step = time.perf_counter() - started
    for _ in range(warmup - 1):
        step()
    trim_allocator()
    before = status_bytes("VmRSS")
    reset = reset_peak()
    times = []
    cpu_started = time.process_time()
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    cpu_seconds = time.process_time() - cpu_started  # all threads of the process
    peak = status_bytes("VmHWM")
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({
        "engine": "pytorch",
        "version": torch.__version__,
        "model": args.model,
        "attention": args.attention if args.model in ("attn1", "attn2") else None,
        "variant": args.variant,
        "compile_seconds": first_step if args.variant == "compile" and warmup else None,
        "mode": args.mode,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "params": params,
        "median_seconds": median,
        "images_per_second": args.batch_size / median,
        "rss_before_bytes": before,
        "peak_rss_bytes": peak,
        "peak_reset": reset,
        "steps": args.steps,
        "cpu_seconds": cpu_seconds,
        "images_per_cpu_second": args.steps * args.batch_size / cpu_seconds if cpu_seconds > 0 else None,
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
