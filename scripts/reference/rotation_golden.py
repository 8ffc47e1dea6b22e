"""Write the golden images of kd's random rotation, rotated by Pillow exactly as torchvision's
`RandomRotation` rotates a PIL image.

torchvision's `RandomRotation(degrees, interpolation=NEAREST, fill=0)` draws an angle and calls
`img.rotate(angle, resample, expand=False, center=None, fillcolor=fill)` (fill repeated on every
band of a colour image). This script calls the same `Image.rotate` on small asymmetric test
images for a list of angles, fills and filters, and writes every input and output, so kd-core's
test (`crates/kd-core/tests/rotation.rs`) compares kd's rotation with Pillow's without Python.

Usage (Pillow and numpy, nothing else; CPU only, nothing downloads):

    python scripts/reference/rotation_golden.py --out crates/kd-core/tests/fixtures/rotation

It writes, into `--out`:

- `<image>.bin`: the source image, unsigned bytes, planar (channel, row, column), as kd stores
  images; `<image>` is `rgb32` (32x32, 3 channels), `gray28` (28x28, 1 channel) or `gray20x12`
  (20 wide, 12 high, 1 channel: a non-square image, where Pillow's 90° shortcut does not apply);
- `<image>.out.bin`: every case's output for that image, concatenated in `cases.json` order,
  each as planar bytes of the source's shape;
- `cases.json`: the Pillow version and one entry per case: image, shape `[channels, height,
  width]`, angle (decimal, and `angle_bits`: the IEEE-754 bits of the double Pillow received, in
  hex, so that the test uses the same number whatever its JSON float parser does), fill,
  interpolation (`nearest` or `bilinear`), and the output's byte offset in `<image>.out.bin`.

The fixtures were written with Pillow 13.0.0 on x86-64; Pillow's rotation has been the same
code (`Image.rotate` and `libImaging/Geometry.c`) for many releases.
"""

import argparse
import json
import os
import struct

import numpy as np
import PIL
from PIL import Image

ANGLES = [15.0, -15.0, -7.5, 0.3, 45.0, -123.4, 90.0, -90.0, 180.0, 0.0, 1e-15, -1e-13]
FILLED_ANGLES = [15.0, -7.5, 45.0, 90.0]


def pattern(channels, height, width):
    """An asymmetric pattern: ramps, a product term and a marked top-left corner."""
    y, x = np.mgrid[0:height, 0:width]
    planes = []
    for c in range(channels):
        plane = (x * (37 + 11 * c) + y * (101 - 7 * c) + x * y * (3 + c) + 17 * c) % 256
        plane[:3, :5] = 250 - 40 * c  # a marker that breaks every symmetry
        planes.append(plane)
    return np.stack(planes).astype(np.uint8)


def to_pil(planar):
    channels = planar.shape[0]
    if channels == 1:
        return Image.fromarray(planar[0])
    return Image.fromarray(np.ascontiguousarray(planar.transpose(1, 2, 0)))


def from_pil(image, channels):
    array = np.asarray(image, dtype=np.uint8)
    if channels == 1:
        return array[None, :, :]
    return array.transpose(2, 0, 1)


def rotate(image, channels, angle, fill, interpolation):
    """torchvision.transforms.functional.rotate on a PIL image (its `_parse_fill` included)."""
    resample = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}
    fillcolor = fill if channels == 1 else tuple([fill] * channels)
    return image.rotate(
        angle, resample[interpolation], expand=False, center=None, fillcolor=fillcolor
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="fixture folder")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    images = {"rgb32": (3, 32, 32), "gray28": (1, 28, 28), "gray20x12": (1, 12, 20)}
    cases = []
    for name, (channels, height, width) in images.items():
        source = pattern(channels, height, width)
        with open(os.path.join(args.out, f"{name}.bin"), "wb") as f:
            f.write(source.tobytes())
        image = to_pil(source)
        runs = [(a, 0, i) for i in ("nearest", "bilinear") for a in ANGLES]
        runs += [(a, 128, i) for i in ("nearest", "bilinear") for a in FILLED_ANGLES]
        offset = 0
        with open(os.path.join(args.out, f"{name}.out.bin"), "wb") as f:
            for angle, fill, interpolation in runs:
                out = from_pil(rotate(image, channels, angle, fill, interpolation), channels)
                assert out.shape == source.shape
                f.write(out.tobytes())
                cases.append(
                    {
                        "image": name,
                        "shape": [channels, height, width],
                        "angle": angle,
                        "angle_bits": struct.pack(">d", angle).hex(),
                        "fill": fill,
                        "interpolation": interpolation,
                        "offset": offset,
                    }
                )
                offset += out.size
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        # One case a line, so that a diff of the fixtures reads case by case.
        lines = ",\n".join("  " + json.dumps(case) for case in cases)
        f.write(f'{{"pillow": "{PIL.__version__}", "cases": [\n{lines}\n]}}\n')


if __name__ == "__main__":
    main()
