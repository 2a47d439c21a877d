#!/usr/bin/env python3
"""Side-by-side: resrl's token weights against a PyTorch transcription of the
reference computation (docs/spec.md section 3, torch.pca_lowrank as the
reference runs it), on the same inputs, in the same run.

Needs: python3 with numpy and torch (Debian: python3-numpy python3-torch;
install libopenblas0-pthread so that torch's BLAS is OpenBLAS, not the
reference BLAS), a built `resrl` CLI and `resrl_floor` (configure with
-DRESRL_NATIVE=ON for the fast build). Installs nothing.

    python3 benchmarks/compare_reference.py --build build-native [--threads 2] [--repeat 5]

Prints markdown tables:
  1. shape, reference ms, resrl ms, speed-up, floor ratio, weight differences
     (resrl vs reference, and each vs resrl's exact solver);
  2. peak RSS of a process running each (inputs included);
  3. the accuracy/speed trade-off of the randomized solver's settings, on
     full-precision and on bf16 GEMM operands (--gemm), with the fast preset
     (token_weight_params::fast(): niter 1, oversampling 48, bf16) marked.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def make_batch(groups, responses, positives, tokens, hidden, seed, dtype=np.float32):
    """Low-rank 'correct' and 'error' subspaces per group plus noise and a few
    outlier channels (the shape of support/synthetic_batch.hpp, not its values)."""
    rng = np.random.default_rng(seed)
    B = groups * responses
    x = np.empty((B, tokens, hidden), dtype=np.float32)
    mask = np.ones((B, tokens), dtype=np.float32)
    scores = np.zeros(B, dtype=np.float32)
    ids = np.repeat(np.arange(groups, dtype=np.int64), responses)
    rs, re = min(128, hidden // 4), min(64, hidden // 8)
    decay_s = 0.97 ** np.arange(rs)
    decay_e = 0.97 ** np.arange(re)
    for g in range(groups):
        a = rng.standard_normal((hidden, rs + re))
        a -= a.mean(axis=0)
        q, _ = np.linalg.qr(a)
        shared, error = q[:, :rs], q[:, rs:]
        for r in range(responses):
            b = g * responses + r
            positive = r < positives
            scores[b] = 1.0 if positive else 0.0
            coeff = rng.standard_normal((tokens, rs)) * decay_s
            tok = coeff @ shared.T
            if not positive:
                err = rng.random(tokens) < 0.3
                tok[err] = (rng.standard_normal((int(err.sum()), re)) * decay_e) @ error.T
            tok += 0.05 * rng.standard_normal((tokens, hidden))
            tok *= (0.5 + 1.5 * rng.random(tokens))[:, None]
            tok[:, :4] += np.array([1.0, -1.0, 1.0, -1.0])
            x[b] = tok
    return x.astype(dtype), mask, scores, ids


def reference_weights(torch, hidden, mask, scores, ids, rank, max_pos, niter, seed):
    """The reference computation, transcribed from docs/spec.md section 3 in
    PyTorch the way the reference runs it (layer_norm, pca_lowrank, materialised
    projection, torch.quantile)."""
    torch.manual_seed(seed)
    h = torch.from_numpy(hidden)
    m = torch.from_numpy(mask) > 0
    positive = torch.from_numpy(scores) > 0
    gid = torch.from_numpy(ids)
    H = h.shape[-1]
    weights = torch.ones(m.shape, dtype=torch.float32)
    for g in torch.unique(gid):
        pos, neg = (gid == g) & positive, (gid == g) & ~positive
        if not pos.any() or not neg.any():
            continue
        x = h[pos][m[pos]].float()
        if x.shape[0] < 4:
            continue
        if x.shape[0] > max_pos:
            x = x[torch.randperm(x.shape[0])[:max_pos]]
        xn = torch.nn.functional.layer_norm(x, (H,))
        mu = xn.mean(dim=0, keepdim=True)
        xc = xn - mu
        k = min(rank, xc.shape[0] - 1, H)
        _, _, v = torch.pca_lowrank(xc, q=k, niter=niter)
        hn = torch.nn.functional.layer_norm(h[neg].float(), (H,)) - mu
        resid = hn - (hn @ v) @ v.T
        d = (resid * resid).sum(dim=-1) / H
        valid = d[m[neg]]
        lo, hi = torch.quantile(valid, 0.2), torch.quantile(valid, 0.8)
        rng_ = (hi - lo).clamp_min(1e-6)
        if rng_ < 1e-5:
            w = torch.full_like(d, 0.55)
        else:
            w = 0.1 + 0.9 * ((d - lo) / rng_).clamp(0.0, 1.0)
        w = torch.where(m[neg], w, torch.ones_like(w))
        weights[neg] = w
    return weights.numpy()


def data_worker(args):
    """Writes the inputs of one shape: in its own process, so that the parent
    (whose memory a spawned child's peak RSS may include) stays small."""
    G, R, P, T, H = (int(v) for v in args.shape.split(","))
    hidden, mask, scores, ids = make_batch(G, R, P, T, H, seed=1)
    for name, a in (("hidden", hidden), ("mask", mask), ("scores", scores), ("groups", ids)):
        np.save(f"{args.dir}/{name}.npy", a)


def reference_worker(args):
    """Runs in its own process so that its peak RSS is its own."""
    import torch
    torch.set_num_threads(args.threads)
    hidden = np.load(args.dir + "/hidden.npy")
    mask, scores, ids = (np.load(args.dir + f"/{n}.npy") for n in ("mask", "scores", "groups"))
    times, w = [], None
    for i in range(args.repeat):
        start = time.perf_counter()
        w = reference_weights(torch, hidden, mask, scores, ids, args.rank, args.max_pos, args.niter, i)
        times.append(time.perf_counter() - start)
    np.save(args.dir + "/w_reference.npy", w)
    print(json.dumps({"median_seconds": float(np.median(times))}))


def run_with_rss(cmd):
    """Runs cmd; returns (stdout, peak RSS in MiB). The peak is the process's
    own VmHWM, polled from /proc: getrusage's maxrss would include the
    spawning Python process's memory, inherited across exec."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_kib = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.005)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return out, peak_kib / 1024.0


def resrl_run(build, d, threads, repeat, solver="randomized", niter=4, oversample=0, rank=64, max_pos=4096,
              out="w_resrl.npy", gemm="full"):
    report = d + "/report.json"
    cmd = [build + "/resrl", "token-weights", "--hidden", d + "/hidden.npy", "--mask", d + "/mask.npy",
           "--scores", d + "/scores.npy", "--groups", d + "/groups.npy", "--rank", str(rank),
           "--max-pos-tokens", str(max_pos), "--solver", solver, "--niter", str(niter), "--oversample",
           str(oversample), "--threads", str(threads), "--repeat", str(repeat), "--out", d + "/" + out,
           "--report", report, "--gemm", gemm]
    _, rss = run_with_rss(cmd)
    with open(report) as f:
        r = json.load(f)
    if gemm == "bf16" and not all(g["bf16_gemms"] for g in r["groups"] if g["skipped"] == "none"):
        print("note: this CPU has no AVX512-BF16; --gemm bf16 ran full-precision GEMMs", file=sys.stderr)
    return r["median_seconds"], rss, np.load(d + "/" + out)


def floor_seconds(build, positive, negative, H, rank, niter, oversample, threads, element_bytes=4, gemm="full"):
    out = subprocess.run([build + "/resrl_floor", str(positive), str(negative), str(H), str(rank), str(niter),
                          str(oversample), str(threads), str(element_bytes), gemm],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["floor_seconds"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="build directory holding resrl and benchmarks/resrl_floor")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small shapes only (for a smoke run)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--make-data", dest="shape", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--rank", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--max-pos", type=int, default=4096, help=argparse.SUPPRESS)
    ap.add_argument("--niter", type=int, default=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.shape:
        return data_worker(args)
    if args.worker:
        return reference_worker(args)
    import importlib.util
    if importlib.util.find_spec("torch") is None:  # not imported here: the parent stays small
        sys.exit("compare_reference.py needs PyTorch: apt-get install python3-torch libopenblas0-pthread")
    build = os.path.abspath(args.build)
    floor_tool = build + "/benchmarks"

    # (groups, responses, positives, tokens, hidden): the paper's micro-batch first.
    shapes = [(1, 4, 2, 4096, 2560), (1, 4, 2, 2048, 2560), (2, 8, 4, 1024, 1024)]
    if args.quick:
        shapes = [(1, 4, 2, 512, 256)]
    rows, memory, presets, fast_rss = [], [], [], None
    for shape in shapes:
        G, R, P, T, H = shape
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([sys.executable, __file__, "--make-data", ",".join(map(str, shape)), "--dir", d],
                           check=True)
            ref_out, ref_rss = run_with_rss([sys.executable, __file__, "--worker", "--dir", d, "--threads",
                                             str(args.threads), "--repeat", str(args.repeat)])
            ref_s = json.loads(ref_out)["median_seconds"]
            w_ref = np.load(d + "/w_reference.npy")
            t_resrl, rss_resrl, w = resrl_run(build, d, args.threads, args.repeat)
            t_exact, _, w_exact = resrl_run(build, d, args.threads, 1, solver="exact", out="w_exact.npy")
            positive = min(P * T, 4096)
            fl = G * floor_seconds(floor_tool, positive, (R - P) * T, H, 64, 4, 0, args.threads)  # G equal groups
            label = f"{G}x{R} ({P}+{R - P}) x {T}, H={H}"
            rows.append((label, ref_s, t_resrl, fl, np.abs(w - w_ref).max(), np.abs(w - w_exact).max(),
                         np.abs(w_ref - w_exact).max()))
            memory.append((label, os.path.getsize(d + "/hidden.npy") / 2**20, ref_rss, rss_resrl))
            if shape == shapes[0]:
                settings = [(n, o, "full") for n, o in ((4, 0), (2, 0), (1, 0), (1, 16), (1, 32), (1, 48),
                                                        (2, 48), (0, 64))]
                settings += [(n, o, "bf16") for n, o in ((4, 0), (1, 32), (1, 48), (2, 32))]
                for niter, over, gemm in settings:
                    t, rss, wp = resrl_run(build, d, args.threads, args.repeat, niter=niter, oversample=over,
                                           out="w_preset.npy", gemm=gemm)
                    if (niter, over, gemm) == (1, 48, "bf16"):
                        fast_rss = (label, rss)
                    fl_p = floor_seconds(floor_tool, positive, (R - P) * T, H, 64, niter, over, args.threads,
                                         gemm=gemm)
                    presets.append((niter, over, gemm, np.abs(wp - w_exact).max(), t, ref_s / t, t / fl_p))

    print(f"threads = {args.threads}, repeat = {args.repeat} (medians)\n")
    print("| shape | reference ms | resrl ms | speed-up | floor ms | floor ratio | max dw resrl-ref "
          "| max dw resrl-exact | max dw ref-exact |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, ref_s, t, fl, d1, d2, d3 in rows:
        print(f"| {label} | {ref_s * 1e3:.1f} | {t * 1e3:.1f} | {ref_s / t:.1f}x | {fl * 1e3:.1f} | {t / fl:.2f} "
              f"| {d1:.4f} | {d2:.4f} | {d3:.4f} |")
    print("\n| shape | hidden states MiB | reference peak RSS MiB | resrl CLI peak RSS MiB |")
    print("|---|---|---|---|")
    for label, inputs, a, b in memory:
        print(f"| {label} | {inputs:.0f} | {a:.0f} | {b:.0f} |")
    if fast_rss:
        print(f"\nThe fast preset (bf16 GEMMs) on {fast_rss[0]}: resrl CLI peak RSS {fast_rss[1]:.0f} MiB.")
    print(f"\nRandomized solver settings on {rows[0][0]} (weights against resrl's exact solver):\n")
    print("| niter | oversampling | GEMM operands | max dw vs exact | resrl ms | speed-up vs reference "
          "| floor ratio |")
    print("|---|---|---|---|---|---|---|")
    for niter, over, gemm, dw, t, speed, ratio in presets:
        mark = " (fast preset)" if (niter, over, gemm) == (1, 48, "bf16") else ""
        print(f"| {niter} | {over} | {gemm}{mark} | {dw:.4f} | {t * 1e3:.1f} | {speed:.1f}x | {ratio:.2f} |")


if __name__ == "__main__":
    main()
