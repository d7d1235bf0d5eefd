#!/usr/bin/env python3
"""Writes the seed corpus in fuzz/corpus/<target>/ (committed): small valid files of each format.

    /work/torchenv/bin/python fuzz/make_seeds.py   # any Python with torch, safetensors, PIL
"""

import collections
import gzip
import io
import json
import pathlib
import shutil
import sys
import tarfile

import torch
from PIL import Image
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent
REPO = ROOT.parent
C = ROOT / "corpus"


def out(target: str, name: str) -> pathlib.Path:
    d = C / target
    d.mkdir(parents=True, exist_ok=True)
    return d / name


def main() -> None:
    g = torch.Generator().manual_seed(0)
    state = collections.OrderedDict(
        [("conv.weight", torch.randn(2, 1, 2, 2, generator=g)), ("bn.running_mean", torch.zeros(2)),
         ("bn.num_batches_tracked", torch.tensor(3))]
    )
    torch.save(state, out("pickle", "zip.pth"))
    torch.save(state, out("pickle", "legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save({"epoch": 1, "state_dict": state}, out("pickle", "checkpoint.pt"))
    # A TAR file in PyTorch < 0.4's layout (scripts/make_import_fixtures.py's writer).
    sys.path.insert(0, str(REPO / "scripts"))
    import make_import_fixtures as m

    tmp = pathlib.Path("/tmp/visionnet-seed-tar")
    tmp.mkdir(exist_ok=True)
    save_file(dict(state), str(tmp / "tiny.safetensors"))
    m.OUT = tmp
    m.save_tar("tiny")
    shutil.copy(tmp / "tiny-tar.pth", out("pickle", "tar.pth"))
    save_file(dict(state), str(out("safetensors", "tiny.safetensors")))
    save_file({"x": torch.randn(1, 3, 4, 4, generator=g).half()}, str(out("safetensors", "half.safetensors")))
    # Images: a 6x5 RGB picture in each format, and a greyscale PNG.
    img = Image.frombytes("RGB", (6, 5), bytes((i * 37) % 256 for i in range(90)))
    for fmt, ext in [("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp"), ("PPM", "ppm")]:
        img.save(out("image", f"tiny.{ext}"), fmt)
    img.convert("L").save(out("image", "grey.png"))
    for f in list((REPO / "configs").glob("*.toml")) + list((REPO / "grids").glob("*.toml")):
        shutil.copy(f, out("toml", f.name))
    out("records", "metrics.csv").write_text(
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds,images_per_second\n"
        "1,2.1,0.2,2.0,0.25,0.01,3.5,120.0\n2,1.9,0.3,,,0.01,3.4,121.5\n"
    )
    out("records", "predictions.csv").write_text("index,label,predicted,confidence\n0,3,3,0.9\n1,2,5,0.4\n")
    out("records", "summary.json").write_text(json.dumps(
        {"model": "cnn", "epochs": 2, "classes": ["a", "b"], "test": {"accuracy": 0.5, "loss": 1.0, "images": 2},
         "best_val_accuracy": [0.5, 1], "train_seconds": 7.0, "images_per_second": 120.0}))
    out("records", "meta.json").write_text(json.dumps(
        {"format_version": 2, "epoch": 1, "step": 10, "model": {"name": "cnn", "options": {}}, "classes": ["a"],
         "input_shape": [3, 32, 32], "normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}, "seed": 0}))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in [("cifar-10-batches-bin/batches.meta.txt", b"airplane\nautomobile\n"),
                           ("cifar-10-batches-bin/test_batch.bin", bytes(3073 * 2))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    out("targz", "cifar.tar.gz").write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    # CIFAR-10 binary records (label byte + 3,072 pixels) for the replay test.
    out("cifar", "two_records.bin").write_bytes(bytes([3]) + bytes(range(256)) * 12 + bytes([9]) + bytes(3072))


if __name__ == "__main__":
    main()
