"""Write the PyTorch checkpoints and reference logits that `kd import` is tested against.

For every zoo architecture this builds the reference PyTorch model (HobbitLong/RepDistiller
`models/`, from a checkout the caller names, through the table in `zoo_reference.py`), gives it
random weights and non-trivial BatchNorm statistics, saves its state dict with `torch.save` and
records its eval-mode logits for a few fixed inputs. kd-core's tests import each file and must
match those logits to 1e-4. The files are generated once and committed: neither PyTorch nor the
checkout is needed to build or test.

Usage (PyTorch required, CPU is enough):

    python scripts/reference/pytorch_fixtures.py --repdistiller /path/to/RepDistiller \
        --out crates/kd-core/tests/fixtures/pytorch

What the files hold, and why they stay small (20-350 KB each, not the 0.3-95 MB of real
checkpoints):

- Weights are strided views (`torch.as_strided`) into a few small random storages shared by all
  tensors of one model, at different storage offsets. `torch.save` writes each storage once, with
  every tensor's offset, shape and strides, so the reader under test must honour all three, as
  it must for checkpoints saved from views, slices or flattened parameter buffers. The strides
  differ per dimension (a transposed or permuted load gives different numbers) and their order
  is drawn per tensor, so layers do not share one structure.
- Convolution weights come from a N(0, 1) storage (a BatchNorm follows every convolution and
  rescales); BatchNorm gains from U(0.6, 1.4), shifts and biases from N(0, 0.1). The classifier
  storage is rescaled after calibration so logits are of order one (the 1e-4 tolerance is then
  a relative error near 1e-5).
- BatchNorm running statistics are measured: a training-mode pass over a calibration batch with
  cumulative averaging (`momentum=None`), so every layer normalises its real input and deep
  networks (resnet110, vgg19) keep activations of order one. They are stored as ordinary
  contiguous tensors, and they differ from the statistics of the test inputs.
- The test inputs follow a formula the Rust test recomputes (`input_value` below), so no input
  file is needed. A draw is redrawn when its logits barely tell the two test images apart (deep
  layers fallen silent: the comparison would prove little) or when PyTorch's own float32 logits
  are more than 4e-5 from float64 ones (rounding alone would use up the tolerance).

Besides `<arch>.pth` (100 classes, 3 channels) it writes resnet8 (10 classes) in the wrappers
`kd import` accepts, and checkpoints with missing, unexpected and misshaped keys for its errors.
"""

import argparse
import copy
import json
import math
import os
import sys

import torch
import torch.nn as nn

from zoo_reference import ZOO, build

INPUTS = 2  # images in the reference batch


def input_value(n, c, h, w):
    """Pixel (n, c, h, w) of the reference batch (the Rust test computes the same in f64)."""
    return math.sin(0.21 * h + 0.37 * w + 1.3 * c + 2.9 * n) + 0.5 * math.cos(
        0.013 * h * w + 0.7 * c - 1.1 * n
    )


def reference_inputs(channels=3, size=32, images=range(INPUTS)):
    x = torch.empty(len(images), channels, size, size, dtype=torch.float64)
    for n in images:
        for c in range(channels):
            for h in range(size):
                for w in range(size):
                    x[n - images[0], c, h, w] = input_value(n, c, h, w)
    return x.float()


STRIDES = [1, 2, 3, 5]


def strides_of(shape, generator=None):
    """Distinct strides per dimension, so a transposed or permuted read gives other values;
    permuted per tensor (with a generator) so that layers do not share one structure."""
    strides = STRIDES[: len(shape)]
    if generator is None:
        return strides
    return [strides[i] for i in torch.randperm(len(shape), generator=generator)]


def span_of(shape, strides=None):
    strides = strides or strides_of(shape)
    return sum((d - 1) * s for d, s in zip(shape, strides)) + 1


def largest_span(shape):
    """The span of `shape` under the least favourable order of its strides."""
    dims = sorted(shape, reverse=True)
    strides = sorted(STRIDES[: len(shape)], reverse=True)
    return sum((d - 1) * s for d, s in zip(dims, strides)) + 1


class Storages:
    """Small random storages that every tensor of one model is a strided view into, each sized
    to the largest view it serves plus room for varied offsets."""

    def __init__(self, model, generator):
        def largest(kinds, attr):
            shapes = [
                tuple(getattr(m, attr).shape)
                for m in model.modules()
                if isinstance(m, kinds) and getattr(m, attr, None) is not None
            ]
            return max(largest_span(s) for s in shapes)

        norm = (nn.BatchNorm2d,)
        conv_span = largest((nn.Conv2d,), "weight")
        fc_span = largest((nn.Linear,), "weight")
        shift_span = max(largest(norm, "bias"), largest((nn.Linear,), "bias"))
        self.conv = torch.randn(conv_span + 509, generator=generator)
        self.fc = torch.randn(fc_span + 61, generator=generator)
        self.gain = torch.rand(largest(norm, "weight") + 127, generator=generator) * 0.8 + 0.6
        self.shift = torch.randn(shift_span + 127, generator=generator) * 0.1
        self.generator = generator

    def view(self, storage, shape):
        strides = strides_of(shape, self.generator)
        room = storage.numel() - span_of(shape, strides)
        offset = int(torch.randint(room + 1, (1,), generator=self.generator))
        return torch.as_strided(storage, shape, strides, offset)


def randomise(model, generator):
    """Gives every parameter a strided view of the shared storages; returns the storages."""
    storages = Storages(model, generator)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data = storages.view(storages.conv, tuple(module.weight.shape))
            if module.bias is not None:
                module.bias.data = storages.view(storages.shift, tuple(module.bias.shape))
        elif isinstance(module, nn.Linear):
            module.weight.data = storages.view(storages.fc, tuple(module.weight.shape))
            module.bias.data = storages.view(storages.shift, tuple(module.bias.shape))
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.data = storages.view(storages.gain, tuple(module.weight.shape))
            module.bias.data = storages.view(storages.shift, tuple(module.bias.shape))
    return storages


def scale_classifier(model, storages, generator):
    """Rescales the classifier storage in place so that W·f has unit standard deviation on a
    calibration batch: logits of order one whatever the depth (residual sums grow with it)."""
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        product = model(calibration_batch(generator)) - fc.bias
        storages.fc.mul_(1.0 / product.std().item())


def calibration_batch(generator):
    """The test inputs among 14 more images of the same formula with noise: every layer then
    sees the test inputs inside the range its statistics were measured on (with statistics of
    other images alone, deep layers of some networks fall silent on them)."""
    x = reference_inputs(images=range(INPUTS, INPUTS + 14))
    x = x + 0.2 * torch.randn(x.shape, generator=generator)
    return torch.cat([reference_inputs(), x])


def calibrate(model, generator):
    """Running statistics measured on a calibration batch (not the test inputs)."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(calibration_batch(generator))
    model.eval()


def make(module, ctor, num_classes, seed):
    """A randomised, calibrated model whose logits tell the two test images apart (some draws
    make deep layers fall silent, which would make the comparison prove little: redrawn)."""
    for attempt in range(20):
        generator = torch.Generator().manual_seed(seed * 100 + attempt)
        model = build(module, ctor, num_classes)
        storages = randomise(model, generator)
        calibrate(model, generator)
        scale_classifier(model, storages, generator)
        for name, tensor in model.state_dict().items():
            if not torch.isfinite(tensor.float()).all():
                raise ValueError(f"{ctor}: {name} is not finite")
        logits = logits_of(model, reference_inputs())
        apart = max(abs(a - b) for a, b in zip(*logits))
        if apart > 0.2 * max(abs(v) for row in logits for v in row) and conditioned(model):
            return model
    raise ValueError(f"{ctor}: no draw told the test images apart with well-conditioned logits")


def conditioned(model):
    """Whether PyTorch's own float32 logits are within 4e-5 of float64 ones: else rounding
    alone (in any framework) could use up the 1e-4 the Rust test allows."""
    inputs = reference_inputs()
    with torch.no_grad():
        single = model(inputs).double()
        double = copy.deepcopy(model).double()(inputs.double())
    return float((single - double).abs().max()) < 4e-5


def logits_of(model, inputs):
    with torch.no_grad():
        out = model(inputs)
    if not torch.isfinite(out).all():
        raise ValueError("non-finite logits")
    return [[float(v) for v in row] for row in out]


def size_kib(path):
    return os.path.getsize(path) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repdistiller", required=True, help="checkout of HobbitLong/RepDistiller")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sys.path.insert(0, args.repdistiller)
    import importlib

    os.makedirs(args.out, exist_ok=True)
    inputs = reference_inputs()
    expected = {}
    for seed, (name, module_name, ctor) in enumerate(ZOO):
        module = importlib.import_module(f"models.{module_name}")
        model = make(module, ctor, 100, seed)
        path = os.path.join(args.out, f"{name}.pth")
        torch.save(model.state_dict(), path)
        logits = logits_of(model, inputs)
        expected[name] = {"num_classes": 100, "in_channels": 3, "logits": logits}
        spread = max(abs(v) for row in logits for v in row)
        print(f"{name:12} {size_kib(path):7.1f} KiB  max |logit| {spread:.3f}")

    # resnet8 for 10 classes, bare and in every wrapper `kd import` accepts.
    resnet = importlib.import_module("models.resnet")
    model = make(resnet, "resnet8", 10, 100)
    state = model.state_dict()
    expected["resnet8_c10"] = {"num_classes": 10, "in_channels": 3, "logits": logits_of(model, inputs)}
    # One SGD step on a copy fills momentum buffers: the optimiser state holds tensors too.
    # (Only the classifier's, to keep the file small.)
    trainer = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(trainer.fc.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    trainer(torch.randn(4, 3, 32, 32)).logsumexp(1).mean().backward()
    optimizer.step()
    files = {
        # RepDistiller train_teacher.py: epoch, model, best_acc, optimizer.
        "resnet8_repdistiller.pth": {
            "epoch": 240,
            "model": state,
            "best_acc": torch.tensor(71.5),
            "optimizer": optimizer.state_dict(),
        },
        # A common Lightning-style / torchvision-recipe wrapper.
        "resnet8_state_dict.pth": {"state_dict": state, "epoch": 3},
        # nn.DataParallel / DistributedDataParallel keys, in mdistiller's {"model": ...}.
        "resnet8_dataparallel.pth": {"model": {f"module.{k}": v for k, v in state.items()}},
        "resnet8_c10.pth": state,
        # Error cases.
        "resnet8_missing.pth": {
            k: v for k, v in state.items() if k not in ("fc.bias", "layer1.0.bn1.running_var")
        },
        "resnet8_unexpected.pth": dict(
            state, **{"fc2.weight": torch.zeros(10, 64), "layer9.0.conv1.weight": torch.zeros(1)}
        ),
        "resnet8_misshaped.pth": dict(state, **{"layer1.0.conv1.weight": torch.zeros(16, 16, 1, 1)}),
        "no_tensors.pth": {"epoch": 3, "note": "a checkpoint without weights"},
    }
    for file, content in files.items():
        path = os.path.join(args.out, file)
        torch.save(content, path)
        print(f"{file:28} {size_kib(path):7.1f} KiB")

    with open(os.path.join(args.out, "expected.json"), "w") as f:
        f.write('{"source": "HobbitLong/RepDistiller models/, by scripts/reference/pytorch_fixtures.py",\n')
        f.write(f' "torch": "{torch.__version__}",\n')
        f.write(' "inputs": "x[n,c,h,w] = sin(0.21h + 0.37w + 1.3c + 2.9n) + 0.5 cos(0.013hw + 0.7c - 1.1n), n < 2, 3x32x32",\n')
        f.write(' "models": {\n')
        f.write(",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in expected.items()))
        f.write("\n }}\n")


if __name__ == "__main__":
    main()
