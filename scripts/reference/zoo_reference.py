"""Write the zoo's reference numbers from the PyTorch model definitions it must match.

For every zoo architecture, this builds the reference PyTorch model (HobbitLong/RepDistiller
`models/`, from a checkout the caller names) and records, for 10 and 100 classes and for 3 and 1
input channels: the trainable parameter count (`sum(p.numel() for p in model.parameters())`),
every state-dict key with its shape (for 100 classes and 3 channels), and the per-sample shape of every feature tap returned by
`forward(x, is_feat=True)` on a 32x32 input. kd-core's tests compare the Rust zoo against this
file; it is generated once and committed, so neither PyTorch nor the checkout is needed to build
or test.

Usage (PyTorch required, CPU is enough):

    python scripts/reference/zoo_reference.py --repdistiller /path/to/RepDistiller \
        --out crates/kd-core/tests/fixtures/zoo_reference.json

The reference stems hard-code 3 input channels; for the 1-channel rows the stem convolution is
rebuilt with 1 input channel and otherwise identical geometry.
"""

import argparse
import contextlib
import io
import json
import sys

import torch
import torch.nn as nn

# kd zoo name -> (module, constructor) in RepDistiller's models package.
ZOO = [
    ("resnet8", "resnet", "resnet8"),
    ("resnet14", "resnet", "resnet14"),
    ("resnet20", "resnet", "resnet20"),
    ("resnet32", "resnet", "resnet32"),
    ("resnet44", "resnet", "resnet44"),
    ("resnet56", "resnet", "resnet56"),
    ("resnet110", "resnet", "resnet110"),
    ("resnet8x4", "resnet", "resnet8x4"),
    ("resnet32x4", "resnet", "resnet32x4"),
    ("wrn_16_1", "wrn", "wrn_16_1"),
    ("wrn_16_2", "wrn", "wrn_16_2"),
    ("wrn_40_1", "wrn", "wrn_40_1"),
    ("wrn_40_2", "wrn", "wrn_40_2"),
    ("vgg8", "vgg", "vgg8_bn"),
    ("vgg11", "vgg", "vgg11_bn"),
    ("vgg13", "vgg", "vgg13_bn"),
    ("vgg16", "vgg", "vgg16_bn"),
    ("vgg19", "vgg", "vgg19_bn"),
    ("MobileNetV2", "mobilenetv2", "mobile_half"),
    ("ShuffleV1", "ShuffleNetv1", "ShuffleV1"),
    ("ShuffleV2", "ShuffleNetv2", "ShuffleV2"),
    ("ResNet18", "resnetv2", "ResNet18"),
    ("ResNet34", "resnetv2", "ResNet34"),
    ("ResNet50", "resnetv2", "ResNet50"),
]


def build(module, ctor, num_classes):
    fn = getattr(module, ctor)
    with contextlib.redirect_stdout(io.StringIO()):  # mobilenetv2 prints in __init__
        if ctor == "mobile_half":
            return fn(num_classes)
        return fn(num_classes=num_classes)


def stem_conv_owner(model):
    """(parent module, attribute name) of the first convolution, the one that sees the image."""
    for name, child in model.named_modules():
        if isinstance(child, nn.Conv2d):
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            return parent, attr
    raise ValueError("no convolution")


def to_one_channel(model):
    parent, attr = stem_conv_owner(model)
    old = getattr(parent, attr) if not attr.isdigit() else parent[int(attr)]
    new = nn.Conv2d(1, old.out_channels, old.kernel_size, old.stride, old.padding,
                    groups=old.groups, bias=old.bias is not None)
    if attr.isdigit():
        parent[int(attr)] = new
    else:
        setattr(parent, attr, new)
    return model


def record(model, in_channels):
    model.eval()
    x = torch.randn(2, in_channels, 32, 32)
    with torch.no_grad():
        feats, logits = model(x, is_feat=True)
    names = ["stem"] + [f"stage{i}" for i in range(1, len(feats) - 1)] + ["pooled"]
    taps = [{"name": n, "shape": list(f.shape[1:])} for n, f in zip(names, feats)]
    taps.append({"name": "logits", "shape": list(logits.shape[1:])})
    state = [
        {"key": k, "shape": list(v.shape)}
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    ]
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "state_dict": state,
        "taps": taps,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repdistiller", required=True, help="checkout of HobbitLong/RepDistiller")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sys.path.insert(0, args.repdistiller)
    import importlib

    torch.manual_seed(0)
    rows = []
    for name, module_name, ctor in ZOO:
        module = importlib.import_module(f"models.{module_name}")
        for num_classes in (10, 100):
            for in_channels in (3, 1):
                model = build(module, ctor, num_classes)
                if in_channels == 1:
                    model = to_one_channel(model)
                row = {"name": name, "num_classes": num_classes, "in_channels": in_channels}
                row.update(record(model, in_channels))
                if (num_classes, in_channels) != (100, 3):
                    del row["state_dict"]  # same keys; kept once per architecture
                rows.append(row)
                print(f"{name:12} classes={num_classes:3} in={in_channels} params={row['params']}")
    # One model per line keeps the file small and its diffs readable.
    with open(args.out, "w") as f:
        f.write('{"source": "HobbitLong/RepDistiller models/, by scripts/reference/zoo_reference.py",\n')
        f.write(f' "torch": "{torch.__version__}",\n "models": [\n')
        f.write(",\n".join(json.dumps(row, separators=(",", ":")) for row in rows))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
