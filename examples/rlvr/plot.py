#!/usr/bin/env python3
"""Plots and the markdown table of an RLVR comparison (rlvr.py's output
folder): curves are the mean over seeds with a band from the lowest to the
highest seed.

    python examples/rlvr/plot.py [results folder] [image folder]
"""

import csv
import json
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {"grpo": "GRPO", "w_reinforce": "W-REINFORCE", "nsr": "NSR", "resrl": "ResRL"}
COLORS = {"grpo": "tab:blue", "w_reinforce": "tab:orange", "nsr": "tab:green", "resrl": "tab:red"}


def read_csv(path):
    with open(path) as f:
        return [{k: (v if k == "method" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def series(rows, metric, smooth=1):
    """{method: (steps, (seeds, steps) values)}, optionally a running mean over `smooth` steps."""
    grouped = defaultdict(lambda: defaultdict(list))
    for row in rows:
        grouped[row["method"]][row["seed"]].append((row["step"], row[metric]))
    out = {}
    for method, seeds in grouped.items():
        runs = [sorted(points) for _, points in sorted(seeds.items())]
        steps = np.array([s for s, _ in runs[0]])
        values = np.array([[v for _, v in run] for run in runs])
        if smooth > 1:
            kernel = np.ones(smooth) / smooth
            values = np.array([np.convolve(v, kernel, mode="valid") for v in values])
            steps = steps[smooth - 1:]
        out[method] = (steps, values)
    return out


def band(ax, data, title, ylabel):
    for method in LABELS:
        if method not in data:
            continue
        steps, values = data[method]
        ax.plot(steps, np.nanmean(values, 0), color=COLORS[method], label=LABELS[method], lw=1.5)
        ax.fill_between(steps, np.nanmin(values, 0), np.nanmax(values, 0), color=COLORS[method], alpha=0.15, lw=0)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("RL step", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def main(results, images):
    os.makedirs(images, exist_ok=True)
    evals = read_csv(os.path.join(results, "eval.csv"))
    train = read_csv(os.path.join(results, "train.csv"))
    with open(os.path.join(results, "summary.json")) as f:
        summary = json.load(f)

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    band(axes[0, 0], series(evals, "pass@1"), "held-out pass@1", "pass@1")
    band(axes[0, 1], series(evals, "pass@16"), "held-out pass@16", "pass@16")
    band(axes[1, 0], series(evals, "correct_loglik"), "log-likelihood of correct responses (LLD monitor)",
         "mean summed log p")
    band(axes[1, 1], series(evals, "entropy"), "policy entropy on sampled responses", "nats / token")
    axes[0, 0].legend(fontsize=8)
    save(fig, os.path.join(images, "curves.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    last = max(row["step"] for row in evals)
    ks = np.arange(1, 17)
    first_method = summary["config"]["methods"][0]
    start = [[row[f"pass@{k}"] for k in ks] for row in evals if row["step"] == 0 and row["method"] == first_method]
    ax.plot(ks, np.mean(start, 0), color="gray", ls="--", label="SFT start")
    for method in LABELS:
        final = np.array([[row[f"pass@{k}"] for k in ks] for row in evals
                          if row["step"] == last and row["method"] == method])
        if len(final):
            ax.plot(ks, final.mean(0), color=COLORS[method], label=LABELS[method], marker=".")
            ax.fill_between(ks, final.min(0), final.max(0), color=COLORS[method], alpha=0.15, lw=0)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k", fontsize=9)
    ax.set_ylabel("pass@k", fontsize=9)
    ax.set_title(f"held-out pass@k after {int(last)} RL steps", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, os.path.join(images, "pass_at_k.png"))

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    band(axes[0, 0], series(train, "reward", smooth=10), "training reward (running mean of 10 steps)", "mean reward")
    band(axes[0, 1], series(train, "lld_mean_change", smooth=10),
         "change of positive responses' log-likelihood per update", "mean change (nats)")
    band(axes[1, 0], series(train, "skipped_groups", smooth=10), "groups skipped by the token weights",
         "share of groups")
    band(axes[1, 1], series(train, "negative_weight", smooth=10), "mean ResRL weight of negative tokens", "weight")
    axes[0, 0].legend(fontsize=8)
    save(fig, os.path.join(images, "training.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for metric, style in (("shared_weight", "-"), ("other_weight", ":")):
        data = series(train, metric, smooth=10)
        for method in LABELS:
            if method in data:
                steps, values = data[method]
                name = "shared with a correct response" if metric == "shared_weight" else "other negative tokens"
                ax.plot(steps, np.nanmean(values, 0), color=COLORS[method], ls=style, lw=1.2,
                        label=f"{LABELS[method]}: {name}")
    ax.set_title("ResRL weight of negative tokens (running mean of 10 steps)", fontsize=10)
    ax.set_xlabel("RL step", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    save(fig, os.path.join(images, "shared_weights.png"))

    with open(os.path.join(results, "table.md"), "w") as f:
        f.write(table(evals, summary["config"]) + "\n" + over_the_run(train, summary["config"]))


TABLE_METRICS = ("pass@1", "pass@4", "pass@16", "correct_loglik", "entropy")


def table(evals, config):
    """Markdown: pass@1, pass@4, pass@16, log-likelihood of correct responses
    and entropy at the SFT start and after the last RL step, mean ± std over
    seeds (sample std), then the per-seed values."""
    last = max(row["step"] for row in evals)
    seeds = config["seeds"]
    rows = [("SFT (start)", [r for r in evals if r["step"] == 0 and r["method"] == config["methods"][0]])]
    rows += [(LABELS[m], [r for r in evals if r["step"] == last and r["method"] == m]) for m in config["methods"]]
    header = ["| method | " + " | ".join(TABLE_METRICS) + " |", "|---" * (len(TABLE_METRICS) + 1) + "|"]
    lines = list(header)
    for name, finals in rows:
        cells = []
        for metric in TABLE_METRICS:
            values = np.array([r[metric] for r in finals])
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.3f} ± {std:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Per seed ({', '.join(str(s) for s in seeds)}):", ""] + header
    for name, finals in rows:
        by_seed = {int(r["seed"]): r for r in finals}
        cells = [" / ".join(f"{by_seed[s][metric]:.3f}" for s in seeds) for metric in TABLE_METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def over_the_run(train, config):
    """Markdown: per method, means over seeds of training-step quantities:
    the reward of the first and last 50 steps, the share of updates that
    lowered the batch's correct responses' likelihood and the mean change,
    the share of skipped groups, and the ResRL weight of negative tokens
    (all, shared with a correct response, other), token-weighted."""
    lines = ["| method | reward, first 50 steps | reward, last 50 steps | updates lowering correct likelihood | "
             "mean change (nats) | skipped groups | negative weight | shared | other |", "|---" * 9 + "|"]
    for method in config["methods"]:
        rows = [r for r in train if r["method"] == method]
        per_seed = [[r for r in rows if r["seed"] == s] for s in config["seeds"]]
        first = np.mean([np.mean([r["reward"] for r in run[:50]]) for run in per_seed])
        last = np.mean([np.mean([r["reward"] for r in run[-50:]]) for run in per_seed])
        lowered = np.mean([r["lld_mean_change"] < 0 for r in rows])
        change = np.mean([r["lld_mean_change"] for r in rows])
        skipped = np.mean([r["skipped_groups"] for r in rows])
        negatives = [r["negative_tokens"] for r in rows]
        shared = [r["shared_tokens"] for r in rows]
        others = [n - s for n, s in zip(negatives, shared)]

        def weighted(metric, counts):
            pairs = [(r[metric], c) for r, c in zip(rows, counts) if c > 0]
            return np.average([v for v, _ in pairs], weights=[c for _, c in pairs]) if pairs else float("nan")

        lines.append(f"| {LABELS[method]} | {first:.3f} | {last:.3f} | {lowered:.1%} | {change:+.4f} | {skipped:.1%} | "
                     f"{weighted('negative_weight', negatives):.3f} | {weighted('shared_weight', shared):.3f} | "
                     f"{weighted('other_weight', others):.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "results"),
         sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "..", "docs", "img", "efficacy"))
