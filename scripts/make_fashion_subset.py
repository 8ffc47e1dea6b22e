"""Cut the class-balanced Fashion-MNIST subset shipped in data/fashion-mnist-subset.

Reads the full IDX files (Debian's `dataset-fashion-mnist` installs them under
/usr/share/datasets/fashion-mnist) and keeps, in original file order, the first N training and
the first M test images of every class. Only the Python standard library is used; gzip output
is written with mtime 0 so the files are byte-for-byte reproducible.

    python3 scripts/make_fashion_subset.py --source /usr/share/datasets/fashion-mnist \
        --out data/fashion-mnist-subset --train-per-class 1000 --test-per-class 200
"""

import argparse
import gzip
import os
import struct


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def write_idx(path, magic, dims, payload):
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims)
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
            f.write(header + payload)


def cut(source, out, split, per_class):
    (n, rows, cols), images = read_idx(os.path.join(source, f"{split}-images-idx3-ubyte.gz"))
    (n_labels,), labels = read_idx(os.path.join(source, f"{split}-labels-idx1-ubyte.gz"))
    assert n == n_labels
    size = rows * cols
    taken = {c: 0 for c in range(10)}
    keep = []
    for i, label in enumerate(labels):
        if taken[label] < per_class:
            taken[label] += 1
            keep.append(i)
    assert all(v == per_class for v in taken.values()), taken
    write_idx(os.path.join(out, f"{split}-images-idx3-ubyte.gz"), 0x803, (len(keep), rows, cols),
              b"".join(images[i * size:(i + 1) * size] for i in keep))
    write_idx(os.path.join(out, f"{split}-labels-idx1-ubyte.gz"), 0x801, (len(keep),),
              bytes(labels[i] for i in keep))
    print(f"{split}: kept {len(keep)} of {n}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--out", default="data/fashion-mnist-subset")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    cut(args.source, args.out, "train", args.train_per_class)
    cut(args.source, args.out, "t10k", args.test_per_class)


if __name__ == "__main__":
    main()
