#!/usr/bin/env python3
"""A plain PyTorch training loop: one epoch over CIFAR-10 held in memory, timed as
`visionnet train` times its epochs (scripts/bench_real_loop.sh sets the two side by side).

The models are bench/pytorch_reference.py's (visionnet's shapes, parameter counts and
initialisation). The images are read once from an image folder (train/<class>/*.jpg, the shared
JPEG copy) into one uint8 tensor before anything is timed. Each step then does what visionnet's
trainer does: gathers the batch of a shuffled order (the last partial batch dropped), augments
it (default recipe), scales it to [0, 1] and normalises it by the training set's per-channel
mean and std, runs forward, the loss, backward and the optimizer step, and reads the loss and
the number of correct predictions back (as a loop printing its progress does). All of it runs
on the main thread, as in a plain loop without a DataLoader.

Recipes (`--recipe`), as in visionnet:
  study    configs/study.toml: Adam at a constant 1e-3, batch 64, no augmentation, plain
           cross-entropy;
  default  visionnet train's defaults: SGD (momentum 0.9, Nesterov, weight decay 5e-4) on a
           one-cycle schedule peaking at 0.05 after 15% of the steps, batch 128, label smoothing
           0.1, random crops from a 4-pixel zero-padded image and random horizontal flips.

Variants (`--variant`) as in bench/pytorch_reference.py: eager, compile (torch.compile; its
compilation happens in `--warmup` untimed steps before the epoch, at least 3, which also train
the model) and channels_last.

Prints one JSON object: images/s is the epoch's trained images over the seconds from its first
step to its last; images per CPU-second divide them by the process's CPU time (all threads)
over the same span, a figure less disturbed by other work on a shared machine.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_reference  # noqa: E402  (the models)

RECIPES = {
    "study": dict(batch_size=64, crop_padding=0, flip=False, label_smoothing=0.0),
    "default": dict(batch_size=128, crop_padding=4, flip=True, label_smoothing=0.1),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=["cnn", "attn1", "attn2", "attn3"])
    p.add_argument("--recipe", default="study", choices=sorted(RECIPES))
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10-jpeg"),
                   help="image folder with train/<class>/*.jpg (default: the shared CIFAR-10 JPEG copy)")
    p.add_argument("--train-limit", type=int, default=None, help="train on the first N images of a seeded shuffle")
    p.add_argument("--variant", default="eager", choices=["eager", "compile", "channels_last"])
    p.add_argument("--attention", default="sdpa", choices=["naive", "sdpa"], help="pixel attention kernel (attn1, attn2)")
    p.add_argument("--warmup", type=int, default=0, help="untimed steps before the epoch (compile: at least 3)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads <= 0 or (args.train_limit is not None and args.train_limit <= 0):
        p.error("--threads and --train-limit must be > 0")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def load_images(root, torch):
    """train/<class>/*.jpg -> (uint8 [n, 3, 32, 32], int64 [n]), classes in sorted order."""
    import numpy as np
    from PIL import Image

    train = os.path.join(root, "train")
    if not os.path.isdir(train):
        sys.exit(f"{train}: no such folder (expected an image folder with train/<class>/*.jpg)")
    classes = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d)))
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(train, name)
        for file in sorted(os.listdir(folder)):
            path = os.path.join(folder, file)
            try:
                with Image.open(path) as im:
                    images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            except OSError as e:
                sys.exit(f"{path}: cannot read the image: {e}")
            labels.append(label)
    if not images:
        sys.exit(f"{train}: no images")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # [n, 3, h, w]
    return x, torch.tensor(labels, dtype=torch.int64), len(classes)


def main():
    args = parse_args()
    import torch
    import torch.nn.functional as F

    recipe = RECIPES[args.recipe]
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    images, labels, classes = load_images(args.data, torch)
    if args.train_limit is not None:
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(args.seed))[: args.train_limit]
        images, labels = images[keep], labels[keep]
    load_seconds = time.perf_counter() - started
    n, c, h, w = images.shape
    batch = recipe["batch_size"]
    if n < batch:
        sys.exit(f"{n} images are fewer than a batch of {batch}")
    scaled = images.float().div_(255)
    mean = scaled.mean(dim=(0, 2, 3)).view(1, c, 1, 1)
    std = scaled.std(dim=(0, 2, 3)).view(1, c, 1, 1)
    del scaled

    net = pytorch_reference.build(argparse.Namespace(model=args.model, classes=classes, attention=args.attention))
    channels_last = args.variant == "channels_last"
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if args.variant == "compile" else net
    net.train()
    steps = n // batch
    if args.recipe == "study":
        optim = torch.optim.Adam(net.parameters(), lr=1e-3)
        schedule = None
    else:
        optim = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=0.05, total_steps=steps + max(args.warmup, 3), pct_start=0.15)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe["label_smoothing"])
    pad = recipe["crop_padding"]
    if pad:
        padded = F.pad(images, (pad, pad, pad, pad))  # zero pixels, as visionnet pads
        rows = torch.arange(h).view(1, 1, h, 1)
        cols = torch.arange(w).view(1, 1, 1, w)
        chans = torch.arange(c).view(1, c, 1, 1)

    def make_batch(indices):
        k = len(indices)
        if pad:
            dy = torch.randint(0, 2 * pad + 1, (k, 1, 1, 1))
            dx = torch.randint(0, 2 * pad + 1, (k, 1, 1, 1))
            x = padded[indices.view(k, 1, 1, 1), chans, rows + dy, cols + dx]  # [k, c, h, w]
        else:
            x = images[indices]
        x = x.float().div_(255).sub_(mean).div_(std)
        if recipe["flip"]:
            flip = torch.rand(k) < 0.5
            x = torch.where(flip.view(k, 1, 1, 1), x.flip(3), x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, labels[indices]

    def step(indices):
        x, y = make_batch(indices)
        optim.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optim.step()
        if schedule is not None:
            schedule.step()
        return loss.item() * len(y), (logits.argmax(1) == y).sum().item()

    warmup = max(args.warmup, 3) if args.variant == "compile" else args.warmup
    compile_started = time.perf_counter()
    for _ in range(warmup):
        step(torch.randperm(n)[:batch])
    warmup_seconds = time.perf_counter() - compile_started

    order = torch.randperm(n)
    loss_sum, correct = 0.0, 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for b in range(steps):
        l, k = step(order[b * batch:(b + 1) * batch])
        loss_sum += l
        correct += k
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    seen = steps * batch
    print(json.dumps({
        "engine": "pytorch", "kind": "epoch", "version": torch.__version__, "model": args.model,
        "attention": args.attention if args.model in ("attn1", "attn2") else None,
        "variant": args.variant, "recipe": args.recipe, "batch_size": batch, "threads": args.threads,
        "images": seen, "seconds": seconds, "images_per_second": seen / seconds,
        "cpu_seconds": cpu_seconds, "images_per_cpu_second": seen / cpu_seconds,
        "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
        "load_seconds": load_seconds, "warmup_steps": warmup, "warmup_seconds": warmup_seconds,
    }))


if __name__ == "__main__":
    main()
