#!/usr/bin/env python3
"""Loads a `visionnet export` into its reference module with `load_state_dict(strict=True)` and
writes its logits: bench/pytorch_reference.py's module for the study's CNN and the attention
models, torchvision's `resnet50` / `vgg16` / `vgg16_bn` and timm's `legacy_xception` for the
baselines (ImageNet form).

    python scripts/check_export.py MODEL CLASSES WEIGHTS.safetensors INPUT.safetensors OUT.safetensors

INPUT holds `input` [n, 3, 32, 32]; OUT gets `logits` [n, CLASSES] of the module in eval mode.
Used by tests/export.rs with the test environment's Python (scripts/test.sh).
"""

import argparse
import importlib.util
import pathlib
import sys

import torch
from safetensors.torch import load_file, save_file


def reference_module(model: str, classes: int) -> torch.nn.Module:
    if model in ("resnet50", "vgg16", "vgg16_bn"):
        import torchvision

        return getattr(torchvision.models, model)(num_classes=classes)
    if model == "xception":
        import timm

        return timm.create_model("legacy_xception", num_classes=classes, pretrained=False)
    path = pathlib.Path(__file__).resolve().parent.parent / "bench" / "pytorch_reference.py"
    spec = importlib.util.spec_from_file_location("pytorch_reference", path)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    return reference.build(argparse.Namespace(model=model, classes=classes, attention="naive"))


def main() -> None:
    model, classes, weights, inputs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    net = reference_module(model, classes)
    net.load_state_dict(load_file(weights), strict=True)
    net.eval()
    with torch.no_grad():
        logits = net(load_file(inputs)["input"])
    save_file({"logits": logits.contiguous()}, out)
    print(f"{model}: {sum(p.numel() for p in net.parameters())} parameters loaded strictly, torch {torch.__version__}")


if __name__ == "__main__":
    main()
