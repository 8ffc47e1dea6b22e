"""Check `kd export` with PyTorch itself, and write the result as a fixture kd's tests compare against.

Given a kd checkpoint of a trained student, this:

1. runs `kd export` twice, as safetensors and as a `torch.save` zip file (`.pth`), from a
   temporary folder holding the checkpoint as `student.kdc` (the safetensors metadata records the
   checkpoint path as given, so the bytes do not depend on where the checkpoint lives); each
   export is run twice to see whether its bytes are deterministic;
2. builds the reference PyTorch definition of the checkpoint's architecture (HobbitLong/RepDistiller
   `models/`, from a checkout the caller names, through the table in `zoo_reference.py`) for the
   checkpoint's classes and input channels; RepDistiller's stems hard-code 3 input channels, so for
   a 1-channel network the stem convolution is rebuilt with 1 input channel and otherwise the same
   geometry (`zoo_reference.to_one_channel`, as the zoo's reference numbers do);
3. loads each export with `model.load_state_dict(state, strict=True)` (safetensors through
   `safetensors.torch.load_file`, the `.pth` through `torch.load(weights_only=True)`);
4. prepares the first `--images` test images of the dataset exactly as `kd predict` does, from the
   input preparation the checkpoint records in its header (IDX bytes / 255, minus the mean, over
   the std, centred on an input-size canvas whose border is a zero pixel after normalisation),
   computes eval-mode logits in float32, and compares them with `kd predict --json` on the same
   images: the largest absolute difference must be below 1e-4 for both exports;
5. writes `expected_export.json`: the checkpoint's file name and sha256, each export's sha256 (when
   deterministic), the image indices, PyTorch's logits, the largest differences and the PyTorch
   version. `tests/tests/export_pytorch.rs` exports the committed checkpoint and checks both the
   files and `kd predict`'s logits against it, without PyTorch.

Usage (PyTorch and `safetensors` required, CPU is enough), from the repository root:

    python scripts/reference/export_check.py --repdistiller /path/to/RepDistiller \
        --kd target/debug/kd --checkpoint crates/kd-core/tests/fixtures/export/student.kdc \
        --data data/fashion-mnist-subset --out crates/kd-core/tests/fixtures/export

Only IDX datasets (one channel, Fashion-MNIST and MNIST) are prepared here; that is what the
committed checkpoint was trained on.
"""

import argparse
import gzip
import hashlib
import importlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

from zoo_reference import ZOO, build, to_one_channel

TOLERANCE = 1e-4
MAGIC_PREFIX = b"KDCKPT\0"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def checkpoint_header(path):
    """The JSON header of a kd checkpoint (format 2: magic, u64 length, u32 CRC, header)."""
    with open(path, "rb") as f:
        head = f.read(20)
        if head[:7] != MAGIC_PREFIX or head[7] != 2:
            raise SystemExit(f"{path}: not a kd checkpoint of format 2")
        (length,) = struct.unpack("<Q", head[8:16])
        return json.loads(f.read(length))


def read_idx_images(path, count):
    """The first `count` images of an IDX image file (gzip or not), as uint8 [count, rows, cols]."""
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        magic, total, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 0x0803:
            raise SystemExit(f"{path}: not an IDX image file (magic {magic:#x})")
        count = min(count, total)
        pixels = np.frombuffer(f.read(count * rows * cols), dtype=np.uint8)
    return pixels.reshape(count, rows, cols)


def idx_file(root, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(root, name)
        if os.path.exists(path):
            return path
    raise SystemExit(f"{root}: no {stem}[.gz]")


def prepare(images, preparation):
    """`kd predict`'s input: float32 [n, 1, size, size], normalised, centred on the canvas."""
    mean = np.float32(preparation["mean"][0])
    std = np.float32(preparation["std"][0])
    size = preparation["input_size"]
    n, rows, cols = images.shape
    zero = (np.float32(0.0) - mean) / std
    x = np.full((n, 1, size, size), zero, dtype=np.float32)
    top, left = (size - rows) // 2, (size - cols) // 2
    normalised = (images.astype(np.float32) / np.float32(255.0) - mean) / std
    x[:, 0, top : top + rows, left : left + cols] = normalised
    return torch.from_numpy(x)


def reference_model(arch, num_classes, in_channels):
    for name, module_name, ctor in ZOO:
        if name == arch:
            model = build(importlib.import_module(f"models.{module_name}"), ctor, num_classes)
            if in_channels == 1:
                model = to_one_channel(model)
            elif in_channels != 3:
                raise SystemExit(f"{in_channels} input channels: only 1 and 3 are checked")
            return model
    raise SystemExit(f"architecture {arch} is not in zoo_reference.ZOO")


def run(command, cwd=None):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def export_twice(kd, workdir, out_name, fmt):
    """Exports `student.kdc` in `workdir` to `out_name` twice; the path and whether the bytes agree."""
    digests = []
    for attempt in range(2):
        name = out_name if attempt == 0 else f"again.{out_name}"
        run([kd, "export", "--checkpoint", "student.kdc", "--out", name, "--format", fmt], workdir)
        digests.append(sha256(os.path.join(workdir, name)))
    return os.path.join(workdir, out_name), digests[0], digests[0] == digests[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repdistiller", required=True, help="checkout of HobbitLong/RepDistiller")
    parser.add_argument("--kd", required=True, help="the kd binary")
    parser.add_argument("--checkpoint", required=True, help="kd checkpoint of a trained student")
    parser.add_argument("--role", default="student")
    parser.add_argument("--data", required=True, help="IDX dataset folder (its test split is used)")
    parser.add_argument("--images", type=int, default=16, help="first N test images")
    parser.add_argument("--out", required=True, help="folder for expected_export.json")
    args = parser.parse_args()
    sys.path.insert(0, args.repdistiller)
    kd = os.path.abspath(args.kd)
    checkpoint = os.path.abspath(args.checkpoint)

    header = checkpoint_header(checkpoint)
    entry = next((n for n in header["networks"] if n["role"] == args.role), None)
    if entry is None:
        raise SystemExit(f"{checkpoint}: no role {args.role}")
    preparation = header.get("preparation")
    if not preparation or preparation.get("format") != "idx":
        raise SystemExit(f"{checkpoint}: records no IDX input preparation")

    # kd's logits on the first N test images, prepared as the checkpoint records.
    predicted = json.loads(
        run([kd, "predict", "--arch", entry["arch"], "--checkpoint", checkpoint, "--role",
             args.role, "--data", args.data, "--limit", str(args.images), "--json"])
    )
    indices = [p["index"] for p in predicted]
    kd_logits = torch.tensor([p["logits"] for p in predicted], dtype=torch.float32)
    images = read_idx_images(idx_file(args.data, "t10k-images-idx3-ubyte"), max(indices) + 1)
    x = prepare(images[indices], preparation)

    from safetensors.torch import load_file

    result = {
        "source": "scripts/reference/export_check.py",
        "torch": torch.__version__,
        "architecture": entry["arch"],
        "num_classes": entry["num_classes"],
        "in_channels": entry["in_channels"],
        "role": args.role,
        "checkpoint": os.path.basename(checkpoint),
        "checkpoint_sha256": sha256(checkpoint),
        "preparation": preparation,
        "tolerance": TOLERANCE,
        "images": indices,
        "labels": [p["label"] for p in predicted],
        "exports": {},
    }
    torch_logits = None
    with tempfile.TemporaryDirectory() as workdir:
        shutil.copyfile(checkpoint, os.path.join(workdir, "student.kdc"))
        for fmt, out_name in (("safetensors", "student.safetensors"), ("pth", "student.pth")):
            path, digest, deterministic = export_twice(kd, workdir, out_name, fmt)
            if fmt == "safetensors":
                state = load_file(path)
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
            model = reference_model(entry["arch"], entry["num_classes"], entry["in_channels"])
            model.load_state_dict(state, strict=True)  # raises on a missing or unexpected key
            model.eval()
            with torch.no_grad():
                logits = model(x)
            difference = (logits - kd_logits).abs().max().item()
            print(f"{fmt:12} {entry['arch']}: {len(state)} entries loaded strictly; "
                  f"max |torch - kd predict| = {difference:.3g} over {len(indices)} images; "
                  f"sha256 {digest} ({'deterministic' if deterministic else 'NOT deterministic'})")
            if difference >= TOLERANCE:
                raise SystemExit(f"{fmt}: logits differ by {difference} >= {TOLERANCE}")
            if torch_logits is not None and not torch.equal(torch_logits, logits):
                raise SystemExit("the safetensors and pth exports give different logits")
            torch_logits = logits
            result["exports"][fmt] = {
                "file": out_name,
                "sha256": digest if deterministic else None,
                "entries": len(state),
                "max_abs_difference": difference,
            }
    result["torch_logits"] = [[float(v) for v in row] for row in torch_logits.tolist()]

    os.makedirs(args.out, exist_ok=True)
    target = os.path.join(args.out, "expected_export.json")
    # One key per line, one image's logits per line: small, and its diffs readable.
    logits = result.pop("torch_logits")
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in result.items()]
    rows = ",\n  ".join(json.dumps(row) for row in logits)
    lines.append(f' "torch_logits": [\n  {rows}\n ]')
    with open(target, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
