#!/usr/bin/env python3
"""What the Python binding costs: resrl.token_weights called from Python on
torch bf16 tensors against the `resrl` CLI's --repeat median (the library
call alone, workspace allocated once) on the same batch, in the same run,
with the same build flags (one build tree holds both).

    python benchmarks/python_overhead.py [--build build-native] [--threads 2] [--repeat 20]

Builds `resrl` and the module in --build (-DRESRL_NATIVE=ON, as
scripts/bench-cpu) with this interpreter, which needs numpy, torch and
nanobind. Shapes: the paper micro-batch (1 group of 2 + 2 responses x 4096
tokens, H = 2560, rank 64, bf16, the batch of benchmarks/compare_reference.py)
and a tiny one (2 + 2 x 16 tokens, H = 64, rank 4). Prints one markdown row
per shape: CLI median, Python median, their difference (the binding's
overhead) in microseconds and percent, and the largest weight difference
(0: the same computation).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from compare_reference import make_batch  # noqa: E402  (the benchmark batch generator)

# (label, groups, responses, positives, tokens, hidden, rank)
SHAPES = [("paper: 1x4 (2+2) x 4096, H=2560, rank 64", 1, 4, 2, 4096, 2560, 64),
          ("tiny: 1x4 (2+2) x 16, H=64, rank 4", 1, 4, 2, 16, 64, 4)]


def build(tree):
    source = os.path.dirname(HERE)
    subprocess.run(["cmake", "-S", source, "-B", tree, "-DCMAKE_BUILD_TYPE=Release", "-DRESRL_NATIVE=ON",
                    "-DRESRL_BUILD_PYTHON=ON", "-DRESRL_BUILD_TESTS=OFF", "-DRESRL_BUILD_EXAMPLES=OFF",
                    "-DRESRL_BUILD_BENCHMARKS=OFF", f"-DPython_EXECUTABLE={sys.executable}"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", tree, "-j2", "--target", "resrl_cli", "resrl_python"], check=True,
                   stdout=subprocess.DEVNULL)


def cli_median(tree, d, rank, threads, repeat):
    out = subprocess.run(
        [tree + "/resrl", "token-weights", "--hidden", d + "/hidden.npy", "--hidden-dtype", "bfloat16", "--mask",
         d + "/mask.npy", "--scores", d + "/scores.npy", "--groups", d + "/groups.npy", "--rank", str(rank),
         "--threads", str(threads), "--repeat", str(repeat), "--out", d + "/w_cli.npy"],
        check=True, capture_output=True, text=True).stdout
    return float(out.split("median_seconds")[1].split()[0]), np.load(d + "/w_cli.npy")


def python_median(resrl, args, rank, threads, repeat):
    resrl.token_weights(*args, rank=rank, threads=threads)  # warm-up: first-touch of the workspace pages
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = resrl.token_weights(*args, rank=rank, threads=threads)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result.weights.numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build-native")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--no-build", action="store_true", help="use the build tree as it is")
    args = ap.parse_args()
    tree = os.path.abspath(args.build)
    if not args.no_build:
        build(tree)
    sys.path.insert(0, tree + "/python/package")
    import torch

    import resrl

    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; threads = {args.threads}, "
          f"repeat = {args.repeat} (medians)\n")
    print("| shape | CLI ms | Python ms | overhead us | overhead % | max dw |")
    print("|---|---|---|---|---|---|")
    for label, G, R, P, T, H, rank in SHAPES:
        hidden, mask, scores, groups = make_batch(G, R, P, T, H, seed=1)
        hidden_bf16 = torch.from_numpy(hidden).to(torch.bfloat16)
        with tempfile.TemporaryDirectory() as d:
            np.save(d + "/hidden.npy", hidden_bf16.view(torch.int16).numpy())  # NumPy has no bfloat16
            for name, a in (("mask", mask), ("scores", scores), ("groups", groups)):
                np.save(f"{d}/{name}.npy", a)
            cli_s, w_cli = cli_median(tree, d, rank, args.threads, args.repeat)
        call = (hidden_bf16, torch.from_numpy(mask), torch.from_numpy(scores), torch.from_numpy(groups))
        py_s, w_py = python_median(resrl, call, rank, args.threads, args.repeat)
        overhead = py_s - cli_s
        print(f"| {label} | {cli_s * 1e3:.3f} | {py_s * 1e3:.3f} | {overhead * 1e6:.1f} | "
              f"{100 * overhead / py_s:.1f} | {np.abs(w_py - w_cli).max():.2g} |")


if __name__ == "__main__":
    main()
