"""PyTorch's side of `cargo xtask bench --vs-pytorch`: the same zoo models and the same steps.

For each model (built from the reference definitions, HobbitLong/RepDistiller `models/`, through
the table in scripts/reference/zoo_reference.py) this times, on a synthetic batch of 3x32x32
images and 100 classes:

- a training step: forward, cross-entropy, backward, SGD step (lr 0.05, momentum 0.9, weight
  decay 5e-4), the loss read back (`.item()`), as kd's `kd bench models` does;
- inference: a forward pass in evaluation mode under `torch.inference_mode()`, the logits read
  back;
- with `--steps kd,dml`, the distillation steps of configs/bench/kd.toml and dml.toml as the
  papers' code runs them: a KD step (resnet56 teacher in evaluation mode under `torch.no_grad()`,
  resnet20 student, 0.1·CE + 0.9·τ²·KL at τ = 4 with `batchmean`, one backward, one SGD step;
  Hinton et al. 2015, RepDistiller `distiller_zoo/KD.py`) and a DML step (two resnet20 peers,
  each CE + KL(other's detached softmax ‖ own), summed, one backward, one SGD step per peer;
  Zhang et al. CVPR 2018).

Warm-up iterations first, then each timed iteration on its own; images per second as median,
minimum and maximum. Prints JSON on stdout. PyTorch is needed only here: kd never runs Python.

    python scripts/reference/pytorch_bench.py --repdistiller /path/to/RepDistiller --models resnet20
    python scripts/reference/pytorch_bench.py --repdistiller /path/to/RepDistiller --steps kd,dml
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts", "reference"))

from zoo_reference import ZOO, build  # noqa: E402


def throughput(seconds, images):
    rates = sorted(images / s for s in seconds)
    return {
        "median": statistics.median(rates),
        "min": rates[0],
        "max": rates[-1],
        "iterations": len(rates),
    }


def timed(warmup, iterations, step):
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(max(iterations, 1)):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return seconds


def bench_model(module, ctor, batch, classes, warmup, iterations):
    torch.manual_seed(0)
    model = build(module, ctor, classes)
    images = torch.randn(batch, 3, 32, 32)
    labels = torch.tensor([(i * 37) % classes for i in range(batch)])

    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        loss.item()

    train = throughput(timed(warmup, iterations, train_step), batch)

    model.eval()

    def inference_step():
        with torch.inference_mode():
            model(images).sum().item()

    inference = throughput(timed(warmup, iterations, inference_step), batch)
    return train, inference


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


def kl(student_logits, target_logits, temperature):
    """KL(softmax(target/τ) ‖ softmax(student/τ)) averaged over the batch, target detached."""
    return F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.softmax(target_logits.detach() / temperature, dim=1),
        reduction="batchmean",
    )


def bench_step(table, name, batch, classes, warmup, iterations):
    """The KD or DML step of configs/bench/{kd,dml}.toml, images per second."""
    import importlib

    def zoo(arch):
        module_name, ctor = table[arch]
        return build(importlib.import_module(f"models.{module_name}"), ctor, classes)

    torch.manual_seed(0)
    images = torch.randn(batch, 3, 32, 32)
    labels = torch.tensor([(i * 37) % classes for i in range(batch)])
    if name == "kd":
        teacher, student = zoo("resnet56"), zoo("resnet20")
        teacher.eval()
        student.train()
        optimizer = sgd(student)
        temperature = 4.0

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                target = teacher(images)
            logits = student(images)
            loss = 0.1 * F.cross_entropy(logits, labels) + 0.9 * temperature**2 * kl(
                logits, target, temperature
            )
            loss.backward()
            optimizer.step()
            loss.item()

    elif name == "dml":
        peers = [zoo("resnet20"), zoo("resnet20")]
        optimizers = [sgd(p) for p in peers]
        for p in peers:
            p.train()

        def step():
            for o in optimizers:
                o.zero_grad(set_to_none=True)
            a, b = (p(images) for p in peers)
            loss = (
                F.cross_entropy(a, labels)
                + kl(a, b, 1.0)
                + F.cross_entropy(b, labels)
                + kl(b, a, 1.0)
            )
            loss.backward()
            for o in optimizers:
                o.step()
            loss.item()

    else:
        sys.exit(f"unknown step {name!r}; known: kd, dml")
    return throughput(timed(warmup, iterations, step), batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repdistiller", required=True, help="checkout of HobbitLong/RepDistiller")
    parser.add_argument("--models", default="", help="comma-separated zoo names")
    parser.add_argument("--steps", default="", help="comma-separated distillation steps: kd, dml")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, args.repdistiller)
    import importlib

    table = {name: (module, ctor) for name, module, ctor in ZOO}
    rows = []
    for name in filter(None, args.models.split(",")):
        if name not in table:
            sys.exit(f"unknown model {name!r}; known: {', '.join(table)}")
        module_name, ctor = table[name]
        module = importlib.import_module(f"models.{module_name}")
        train, inference = bench_model(
            module, ctor, args.batch, args.classes, args.warmup, args.iterations
        )
        rows.append({"model": name, "train": train, "inference": inference})
        print(f"{name}: train {train['median']:.0f} img/s, inference {inference['median']:.0f} img/s",
              file=sys.stderr)
    steps = []
    for name in filter(None, args.steps.split(",")):
        rate = bench_step(table, name, args.batch, args.classes, args.warmup, args.iterations)
        steps.append({"step": name, "throughput": rate})
        print(f"{name} step: {rate['median']:.0f} img/s", file=sys.stderr)
    json.dump(
        {"torch": torch.__version__, "threads": args.threads, "models": rows, "steps": steps},
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
