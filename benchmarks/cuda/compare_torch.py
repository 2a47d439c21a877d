#!/usr/bin/env python3
"""GPU side-by-side: resrl's CUDA token weights against a PyTorch
transcription of docs/spec.md section 3 (torch.pca_lowrank as the reference
runs it) on the same device inputs, timed in the same run with CUDA events.

resrl is called through its CLI (`token-weights --device cuda --repeat N`),
which copies the inputs to the device once and times the computation alone
with CUDA events (median of N); the torch side is timed the same way (warm-up
runs first, median of N, CUDA events around the computation only).

Needs: python3 with numpy and torch (CUDA build), a GPU, and a resrl built
with -DRESRL_ENABLE_CUDA=ON. Installs nothing, needs no network.

    python3 benchmarks/cuda/compare_torch.py --build build-gpu [--repeat 20] [--quick]

Prints one markdown table (shape, torch ms, resrl ms, speed-up, per-group
times, weight differences). The paper's micro-batch is the first row: 1 group
of 4 responses (2 positive, 2 negative), 4096 tokens each, H = 2560, rank 64,
4096 positive tokens, niter 4, bf16.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def make_batch(torch, groups, responses, positives, tokens, hidden, seed, device):
    """Per group: a 64-dimensional 'correct' subspace with decaying weights
    (a clear gap at rank 64, so the subspace the solvers look for is well
    defined) and a 32-dimensional 'error' subspace; negatives draw 30% of
    their tokens from the error subspace. Noise, per-token scale and four
    outlier channels as in real hidden states. Returns bf16 hidden states."""
    gen = torch.Generator(device=device).manual_seed(seed)
    B = groups * responses
    rs, re = 64, 32
    x = torch.empty((B, tokens, hidden), dtype=torch.bfloat16, device=device)
    decay_s = 0.97 ** torch.arange(rs, device=device, dtype=torch.float32)
    decay_e = 0.97 ** torch.arange(re, device=device, dtype=torch.float32)
    outliers = torch.zeros(hidden, device=device)
    outliers[:4] = torch.tensor([1.0, -1.0, 1.0, -1.0], device=device)
    for g in range(groups):
        a = torch.randn((hidden, rs + re), generator=gen, device=device)
        a -= a.mean(dim=0)
        q, _ = torch.linalg.qr(a)
        shared, error = q[:, :rs], q[:, rs:]
        for r in range(responses):
            tok = (torch.randn((tokens, rs), generator=gen, device=device) * decay_s) @ shared.T
            if r >= positives:
                err = torch.rand(tokens, generator=gen, device=device) < 0.3
                e = (torch.randn((tokens, re), generator=gen, device=device) * decay_e) @ error.T
                tok = torch.where(err[:, None], e, tok)
            tok += 0.02 * torch.randn((tokens, hidden), generator=gen, device=device)
            tok *= (0.5 + 1.5 * torch.rand(tokens, generator=gen, device=device))[:, None]
            x[g * responses + r] = (tok + outliers).to(torch.bfloat16)
    mask = torch.ones((B, tokens), dtype=torch.float32, device=device)
    scores = torch.tensor([1.0 if b % responses < positives else 0.0 for b in range(B)], device=device)
    return x, mask, scores


def reference_weights(torch, h, m, scores, responses, rank, max_pos, niter, gen):
    """docs/spec.md section 3 the way the reference computes it: layer_norm,
    torch.pca_lowrank (q = k, niter), the projection materialised,
    torch.quantile. Groups are runs of `responses` samples."""
    F = torch.nn.functional
    H = h.shape[-1]
    valid = m > 0
    positive = scores > 0
    weights = torch.ones(m.shape, dtype=torch.float32, device=h.device)
    for start in range(0, h.shape[0], responses):
        sl = slice(start, start + responses)
        pos, neg = positive[sl], ~positive[sl]
        hg, vg = h[sl], valid[sl]
        x = hg[pos][vg[pos]].float()
        if x.shape[0] < 4 or not bool(neg.any()):
            continue
        if x.shape[0] > max_pos:
            x = x[torch.randperm(x.shape[0], device=h.device, generator=gen)[:max_pos]]
        xn = F.layer_norm(x, (H,))
        mu = xn.mean(dim=0, keepdim=True)
        xc = xn - mu
        k = min(rank, xc.shape[0] - 1, H)
        _, _, v = torch.pca_lowrank(xc, q=k, niter=niter)
        hn = F.layer_norm(hg[neg].float(), (H,)) - mu
        resid = hn - (hn @ v) @ v.T
        d = (resid * resid).sum(dim=-1) / H
        dv = d[vg[neg]]
        lo, hi = torch.quantile(dv, 0.2), torch.quantile(dv, 0.8)
        rng = (hi - lo).clamp_min(1e-6)
        w = torch.where(rng < 1e-5, torch.full_like(d, 0.55), 0.1 + 0.9 * ((d - lo) / rng).clamp(0.0, 1.0))
        weights[start:start + responses][neg] = torch.where(vg[neg], w, torch.ones_like(w))
    return weights


def time_torch(torch, fn, repeat):
    for _ in range(2):  # warm-up: cuSOLVER/cuBLAS handles, caching allocator
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times, out = [], None
    for _ in range(repeat):
        start.record()
        out = fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop) * 1e-3)
    return float(np.median(times)), out


def resrl_cuda(build, d, repeat, solver="randomized", rank=64, max_pos=4096, niter=4, responses=4, out="W.npy"):
    report = os.path.join(d, "report.json")
    cmd = [os.path.join(build, "resrl"), "token-weights", "--hidden", os.path.join(d, "hidden.npy"),
           "--hidden-dtype", "bfloat16", "--mask", os.path.join(d, "mask.npy"), "--scores",
           os.path.join(d, "scores.npy"), "--rollout-n", str(responses), "--rank", str(rank), "--max-pos-tokens",
           str(max_pos), "--niter", str(niter), "--solver", solver, "--device", "cuda", "--repeat", str(repeat),
           "--out", os.path.join(d, out), "--report", report]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("resrl failed: " + " ".join(cmd) + "\n" + r.stderr)
    with open(report) as f:
        return json.load(f)["median_seconds"], np.load(os.path.join(d, out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build-gpu", help="build directory holding the resrl CLI (CUDA-enabled)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="the paper micro-batch only, fewer repeats")
    ap.add_argument("--no-exact", action="store_true", help="skip resrl's exact solver (accuracy column)")
    args = ap.parse_args()
    import torch
    if not torch.cuda.is_available():
        sys.exit("compare_torch.py: torch sees no CUDA device")
    device = "cuda"
    build = os.path.abspath(args.build)
    repeat = 5 if args.quick else args.repeat
    shapes = [(1, 4096, 2560), (8, 4096, 2560)] if not args.quick else [(1, 4096, 2560)]
    rows = []
    for groups, T, H in shapes:
        hidden, mask, scores = make_batch(torch, groups, 4, 2, T, H, seed=1, device=device)
        with tempfile.TemporaryDirectory() as d:
            np.save(os.path.join(d, "hidden.npy"), hidden.view(torch.int16).cpu().numpy())
            np.save(os.path.join(d, "mask.npy"), mask.cpu().numpy())
            np.save(os.path.join(d, "scores.npy"), scores.cpu().numpy())
            gen = torch.Generator(device=device).manual_seed(0)
            torch_s, w_torch = time_torch(
                torch, lambda: reference_weights(torch, hidden, mask, scores, 4, 64, 4096, 4, gen), repeat)
            resrl_s, w_resrl = resrl_cuda(build, d, repeat)
            w_torch = w_torch.cpu().numpy()
            diff_torch = float(np.abs(w_resrl - w_torch).max())
            diff_exact = None
            if not args.no_exact and groups == 1:
                _, w_exact = resrl_cuda(build, d, 1, solver="exact", out="W_exact.npy")
                diff_exact = float(np.abs(w_resrl - w_exact).max())
        rows.append((groups, T, H, torch_s, resrl_s, diff_torch, diff_exact))
        del hidden, mask, scores
        torch.cuda.empty_cache()

    name = torch.cuda.get_device_name(0)
    print(f"\nToken weights on {name} (bf16, rank 64, niter 4, 4 responses of which 2 positive per group)\n")
    print("| groups | B x T x H | torch ms | resrl ms | speed-up | torch ms/group | resrl ms/group "
          "| max dw vs torch | max dw vs resrl exact |")
    print("|---|---|---|---|---|---|---|---|---|")
    for groups, T, H, ts, rs, dt, de in rows:
        exact = f"{de:.2e}" if de is not None else "-"
        print(f"| {groups} | {4 * groups} x {T} x {H} | {ts * 1e3:.2f} | {rs * 1e3:.3f} | {ts / rs:.1f}x "
              f"| {ts * 1e3 / groups:.2f} | {rs * 1e3 / groups:.3f} | {dt:.2e} | {exact} |")


if __name__ == "__main__":
    main()
