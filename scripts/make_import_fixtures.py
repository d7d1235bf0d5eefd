#!/usr/bin/env python3
"""Generates the weight-import fixtures in tests/fixtures/import/ (committed; CI does not run this).

For each reference implementation the Rust port maps names from -- torchvision vgg16, vgg16_bn
and resnet50, timm legacy_xception / xception -- it builds the network with the reference code,
at reduced width so the files stay small (the layer structure, and so every parameter name, is
the full network's), randomises every parameter and BatchNorm statistic, saves the state dict in
PyTorch's native formats (ZIP and legacy pickle `.pth`, and safetensors), and saves a fixed input
with the logits PyTorch computes for it in eval mode.

    python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch torchvision timm safetensors
    /tmp/torch-venv/bin/python scripts/make_import_fixtures.py

The reduced widths here must match the configurations in tests/import.rs.
"""

import pathlib

import timm
import torch
import torch.nn as nn
from safetensors.torch import save_file
from timm.models.xception import Block, SeparableConv2d
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.models.vgg import VGG, make_layers

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "import"


def randomise(model: nn.Module, seed: int, side: int) -> None:
    """Random values for every parameter and BatchNorm statistic, so a wrong mapping shows.

    Running statistics are measured on random batches (as training would leave them), so
    activations stay of order one through the deep residual stacks, then the BatchNorm affine
    parameters are randomised too.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the batches below
        model.train()
        for _ in range(4):
            model(torch.randn(8, 3, side, side, generator=g))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def vgg(batch_norm: bool) -> nn.Module:
    """torchvision VGG-16 (configuration "D") at widths 4, 8, 8, 16, 16, hidden 32."""
    cfg = [4, 4, "M", 8, 8, "M", 8, 8, 8, "M", 16, 16, 16, "M", 16, 16, 16, "M"]
    model = VGG(make_layers(cfg, batch_norm=batch_norm), num_classes=10)
    # torchvision hard-codes 512 * 7 * 7 -> 4096 -> 4096; same layer indices, smaller.
    model.classifier = nn.Sequential(
        nn.Linear(16 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(),
        nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(),
        nn.Linear(32, 10),
    )
    return model


def resnet() -> nn.Module:
    """torchvision ResNet-50 (Bottleneck, 3-4-6-3) with stem 8 and bottleneck widths 4, 8, 8, 16."""
    model = ResNet(Bottleneck, [3, 4, 6, 3], num_classes=10)
    model.inplanes = 8
    model.conv1 = nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(8)
    model.layer1 = model._make_layer(Bottleneck, 4, 3)
    model.layer2 = model._make_layer(Bottleneck, 8, 4, stride=2)
    model.layer3 = model._make_layer(Bottleneck, 8, 6, stride=2)
    model.layer4 = model._make_layer(Bottleneck, 16, 3, stride=2)
    model.fc = nn.Linear(16 * 4, 10)
    return model


def xception(name: str) -> nn.Module:
    """timm `name` (legacy_xception or its alias xception) at widths 8, 16, 16, 24, 32, 32, 48,
    64, 96 with timm's own Block and SeparableConv2d."""
    model = timm.create_model(name, pretrained=False, num_classes=10)
    w = [8, 16, 16, 24, 32, 32, 48, 64, 96]
    model.conv1 = nn.Conv2d(3, w[0], 3, 2, 0, bias=False)
    model.bn1 = nn.BatchNorm2d(w[0])
    model.conv2 = nn.Conv2d(w[0], w[1], 3, bias=False)
    model.bn2 = nn.BatchNorm2d(w[1])
    model.block1 = Block(w[1], w[2], 2, 2, start_with_relu=False)
    model.block2 = Block(w[2], w[3], 2, 2)
    model.block3 = Block(w[3], w[4], 2, 2)
    for i in range(4, 12):
        setattr(model, f"block{i}", Block(w[4] if i == 4 else w[5], w[5], 3, 1))
    model.block12 = Block(w[5], w[6], 2, 2, grow_first=False)
    model.conv3 = SeparableConv2d(w[6], w[7], 3, 1, 1)
    model.bn3 = nn.BatchNorm2d(w[7])
    model.conv4 = SeparableConv2d(w[7], w[8], 3, 1, 1)
    model.bn4 = nn.BatchNorm2d(w[8])
    model.fc = nn.Linear(w[8], 10)
    return model


def save(name: str, model: nn.Module, formats: list[str], seed: int, side: int = 48) -> None:
    randomise(model, seed, side)
    model.eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    for fmt in formats:
        if fmt == "zip":
            torch.save(state, OUT / f"{name}.pth")
        elif fmt == "legacy":
            torch.save(state, OUT / f"{name}-legacy.pth", _use_new_zipfile_serialization=False)
        elif fmt == "checkpoint":
            # A training checkpoint: the state dict nested under "state_dict" beside other values.
            torch.save({"epoch": 3, "state_dict": state}, OUT / f"{name}-checkpoint.pt")
        elif fmt == "safetensors":
            save_file(state, str(OUT / f"{name}.safetensors"))
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1000 + seed))
    with torch.no_grad():
        logits = model(x)
    save_file({"input": x.contiguous(), "logits": logits.contiguous()}, str(OUT / f"{name}-io.safetensors"))
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, logits {logits[0, :3].tolist()}")


def channel_attention_fixtures() -> None:
    """timm's SE, ECA, CBAM and GC modules (the references of `--channel-attn`) with random
    weights (BatchNorm statistics too), a fixed input and their eval-mode output, for
    tests/channel_attn.rs: `channel-attn-<kind>.safetensors` holds the module's state dict under
    timm's names, `input`, `output` and `params` (PyTorch's parameter count). 128 channels, so
    that ECA's kernel is 5 and every reduced width is above its divisor; a 5x6 map, so that
    height and width cannot be swapped unnoticed."""
    from timm.layers.cbam import CbamModule
    from timm.layers.eca import EcaModule
    from timm.layers.global_context import GlobalContext
    from timm.layers.squeeze_excite import SEModule

    modules = {"se": SEModule(128), "eca": EcaModule(128), "cbam": CbamModule(128), "gc": GlobalContext(128)}
    for i, (kind, module) in enumerate(modules.items()):
        g = torch.Generator().manual_seed(700 + i)
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            for m in module.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                    m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        module.eval()
        x = torch.randn(2, 128, 5, 6, generator=g)
        with torch.no_grad():
            y = module(x)
        params = sum(p.numel() for p in module.parameters())
        state = {k: v.contiguous() for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
        state.update({"input": x.contiguous(), "output": y.contiguous(), "params": torch.tensor([float(params)])})
        save_file(state, str(OUT / f"channel-attn-{kind}.safetensors"))
        print(f"channel-attn {kind}: {params} parameters, {sorted(module.state_dict())}")


def save_tar(name: str) -> None:
    """`{name}-tar.pth`: the state dict of `{name}.safetensors` in PyTorch < 0.4's TAR layout.

    `torch.save` can no longer write it, so the layout `torch.serialization.legacy_load` reads is
    written here with `tarfile`: entry `storages` (a pickled count; per storage a pickled
    `(key, location, storage class)`, an int64 element count and the raw little-endian bytes;
    then a pickled list of storage views), entry `tensors` (a pickled count; per tensor a pickled
    `(key, storage key, tensor class)`, int32 rank, 4 padding bytes, int64 sizes, strides and
    storage offset), entry `pickle` (the object, tensors as persistent ids `str(key)`), and
    `sys_info`. The file is then read back with `torch.load(weights_only=False)` (weights_only
    refuses TAR files) and compared.
    """
    import collections
    import io
    import pickle
    import struct
    import tarfile

    from safetensors.torch import load_file

    state = load_file(str(OUT / f"{name}.safetensors"))
    storage_class = {torch.float32: (torch.FloatStorage, torch.FloatTensor), torch.int64: (torch.LongStorage, torch.LongTensor)}

    class Ref:
        def __init__(self, key: int) -> None:
            self.key = key

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return str(obj.key) if isinstance(obj, Ref) else None

    storages, tensors = io.BytesIO(), io.BytesIO()
    pickle.dump(len(state), storages, protocol=2)
    pickle.dump(len(state), tensors, protocol=2)
    root = collections.OrderedDict()
    for i, (k, t) in enumerate(state.items()):
        storage_type, tensor_type = storage_class[t.dtype]
        t = t.contiguous()
        pickle.dump((1000 + i, "cpu", storage_type), storages, protocol=2)
        storages.write(struct.pack("<q", t.numel()))
        storages.write(t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes())
        pickle.dump((i, 1000 + i, tensor_type), tensors, protocol=2)
        tensors.write(struct.pack("<i", t.dim()) + b"\0" * 4)
        tensors.write(struct.pack(f"<{t.dim()}q", *t.shape))
        tensors.write(struct.pack(f"<{t.dim()}q", *t.stride()))
        tensors.write(struct.pack("<q", 0))
        root[k] = Ref(i)
    pickle.dump([], storages, protocol=2)
    obj = io.BytesIO()
    Pickler(obj, protocol=2).dump(root)
    sys_info = io.BytesIO()
    pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}}, sys_info, protocol=2)
    path = OUT / f"{name}-tar.pth"
    with tarfile.open(path, "w:", format=tarfile.PAX_FORMAT) as tar:
        for entry, data in [("sys_info", sys_info), ("pickle", obj), ("storages", storages), ("tensors", tensors)]:
            info = tarfile.TarInfo(entry)
            info.size = len(data.getvalue())
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data.getvalue()))
    back = torch.load(path, weights_only=False)
    assert list(back) == list(state) and all(torch.equal(back[k], state[k]) for k in state), "torch.load disagrees"
    print(f"{path.name}: {len(state)} tensors, read back by torch {torch.__version__}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save("vgg16", vgg(False), ["zip"], seed=1)
    save("vgg16_bn", vgg(True), ["legacy"], seed=2)
    save("resnet50", resnet(), ["safetensors", "legacy", "checkpoint"], seed=3)
    save_tar("resnet50")
    save("legacy_xception", xception("legacy_xception"), ["zip", "safetensors"], seed=4)
    alias = xception("xception")
    assert list(alias.state_dict()) == list(xception("legacy_xception").state_dict())
    save("xception", alias, ["legacy"], seed=5)
    channel_attention_fixtures()


if __name__ == "__main__":
    main()
