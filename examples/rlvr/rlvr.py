#!/usr/bin/env python3
"""End-to-end RLVR experiment: GRPO, W-REINFORCE, NSR and ResRL on a small
self-written decoder trained on chain-of-steps addition (task.py), on CPU.

Per seed: supervised fine-tuning (SFT) until sampled pass@1 on validation
prompts reaches a moderate level (checkpoint cached in the output folder),
then RL from that checkpoint with each of the four advantage weightings:
same prompts and sampling seeds per step, same budget and hyper-parameters.
Advantages, token weights, the reweighting, the loss and its gradient,
Pass@k and the likelihood-displacement monitor come from the resrl library.

    python examples/rlvr/rlvr.py               # full comparison (3 seeds x 4 methods), then plots
    python examples/rlvr/rlvr.py --quick       # CI check, about a minute: asserts that could fail

Results: <out>/eval.csv (held-out metrics every --eval-every steps),
<out>/train.csv (every RL step), <out>/summary.json (settings, SFT, wall
times, final table); plots by plot.py.
"""

import argparse
import csv
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np
import torch

import resrl
import resrl.torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import task  # noqa: E402
from model import TinyDecoder  # noqa: E402

METHODS = ("grpo", "w_reinforce", "nsr", "resrl")
K_MAX = 16


def settings(quick):
    """Every hyper-parameter of a run; the same for all methods and seeds."""
    config = dict(
        digits=4, width=64, heads=4, depth=3,
        sft_batch=64, sft_lr=1e-3, sft_eval_every=25, sft_max_steps=3000, sft_target_pass1=0.25,
        sft_val_prompts=128, sft_val_samples=4,
        rl_steps=400, prompts_per_step=16, rollouts=8, rl_lr=1e-4, grad_clip=1.0, temperature=1.0,
        eval_every=20, eval_prompts=128, eval_samples=K_MAX,
        # ResRL rank for width 64 (the paper: 64 at hidden 2560+); every other
        # token-weight setting is the paper default.
        rank=8,
        seeds=[1, 2, 3], methods=list(METHODS),
    )
    if quick:
        config.update(rl_steps=30, eval_every=30, eval_prompts=16, seeds=[1], methods=["grpo", "resrl"])
    return config


def tensor(array):
    return torch.as_tensor(np.asarray(array))


def fixed_sets(config):
    """Held-out evaluation prompts and SFT-validation prompts, the same for
    every seed; training never draws them."""
    rng = np.random.default_rng(20260)
    evaluation = task.sample_problems(rng, config["eval_prompts"], config["digits"])
    validation = task.sample_problems(rng, config["sft_val_prompts"], config["digits"], frozenset(evaluation))
    return evaluation, validation, frozenset(evaluation) | frozenset(validation)


def rollout(model, pairs, samples, config, generator):
    """Samples `samples` responses per prompt (grouped consecutively). Returns
    prompts (N, P), responses (N, R), mask (N, R) bool (through the first
    end token), rewards (N,) float32, mean token entropy per response (N,)."""
    digits = config["digits"]
    prompts = tensor(task.prompt_batch(pairs, digits)).repeat_interleave(samples, 0)
    length = task.response_length(digits) + 2  # slack: a response that has not ended by then fails
    responses, entropy = model.sample(prompts, length, task.EOS, generator, config["temperature"])
    ended = (responses == task.EOS).int()
    mask = (ended.cumsum(1) - ended) == 0  # tokens before and including the first end token
    rewards = torch.tensor([task.reward(a, b, digits, r) for (a, b), r in
                            zip((p for p in pairs for _ in range(samples)), responses.tolist())], dtype=torch.float32)
    return prompts, responses, mask, rewards, entropy


def response_logp(model, prompts, responses):
    """Per-token log-probabilities (N, R) of the responses and the logits' entropy."""
    ids = torch.cat([prompts, responses], 1)
    logits = model(ids)[:, prompts.shape[1] - 1 : -1].float()
    logp = logits.log_softmax(-1)
    return logp.gather(-1, responses[..., None]).squeeze(-1), logp


def evaluate(model, pairs, config, generator):
    """Held-out metrics: pass@k for k = 1..16 (unbiased, from 16 samples per
    prompt), mean token entropy of the sampled responses, and the mean summed
    log-likelihood of the correct (canonical) responses: the Lazy Likelihood
    Displacement monitor."""
    samples = config["eval_samples"]
    model.eval()
    _, _, mask, rewards, entropy = rollout(model, pairs, samples, config, generator)
    correct = rewards.view(len(pairs), samples).sum(1).numpy().astype(np.int64)
    counts = np.full(len(pairs), samples, dtype=np.int64)
    row = {f"pass@{k}": resrl.mean_pass_at_k(counts, correct, k) for k in range(1, K_MAX + 1)}
    with torch.no_grad():
        digits = config["digits"]
        logp, _ = response_logp(model, tensor(task.prompt_batch(pairs, digits)), tensor(task.response_batch(pairs, digits)))
    row.update(entropy=float(entropy.mean()), correct_loglik=float(logp.sum(1).mean()),
               mean_response_tokens=float(mask.sum(1).float().mean()))
    model.train()
    return row


def new_model(config):
    return TinyDecoder(len(task.VOCAB), config["width"], config["heads"], config["depth"],
                       task.prompt_length(config["digits"]) + task.response_length(config["digits"]) + 2)


def sft_path(out, config, seed):
    keys = ("digits", "width", "heads", "depth", "sft_batch", "sft_lr", "sft_eval_every", "sft_max_steps",
            "sft_target_pass1", "sft_val_prompts", "sft_val_samples")
    tag = "-".join(str(config[k]) for k in keys)
    return os.path.join(out, "sft", f"seed{seed}-{tag}.pt")


def supervised(seed, config, out, progress):
    """SFT of one seed, cached: cross-entropy on the canonical responses of
    fresh random problems until sampled pass@1 on the validation prompts
    reaches sft_target_pass1 (checked every sft_eval_every steps)."""
    path = sft_path(out, config, seed)
    if os.path.exists(path):
        return torch.load(path)["meta"]
    torch.manual_seed(seed)
    model = new_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["sft_lr"])
    _, validation, held_out = fixed_sets(config)
    rng, digits, start = np.random.default_rng([seed, 1]), config["digits"], time.time()
    generator = torch.Generator().manual_seed(seed)
    pass1, step = 0.0, 0
    while step < config["sft_max_steps"]:
        pairs = task.sample_problems(rng, config["sft_batch"], digits, held_out)
        logp, _ = response_logp(model, tensor(task.prompt_batch(pairs, digits)), tensor(task.response_batch(pairs, digits)))
        loss = -logp.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        progress(1)
        if step % config["sft_eval_every"] == 0:
            model.eval()
            _, _, _, rewards, _ = rollout(model, validation, config["sft_val_samples"], config, generator)
            model.train()
            pass1 = float(rewards.mean())
            if pass1 >= config["sft_target_pass1"]:
                break
    meta = dict(seed=seed, steps=step, val_pass1=pass1, seconds=round(time.time() - start, 1))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"model": model.state_dict(), "meta": meta}, path + ".tmp")
    os.replace(path + ".tmp", path)
    return meta


def shared_prefix(responses, mask, rewards, rollouts):
    """(N, R) bool: tokens of negative responses whose whole prefix through
    that token equals a positive response of the same group (correct partial
    steps the two share)."""
    n, length = responses.shape
    shared = torch.zeros(n, length, dtype=torch.bool)
    for g in range(0, n, rollouts):
        rows = range(g, g + rollouts)
        positives = [b for b in rows if rewards[b] > 0]
        for b in (b for b in rows if rewards[b] <= 0):
            for p in positives:
                same = (responses[b] == responses[p]).int().cumprod(0).bool()
                shared[b] |= same & mask[b]
    return shared


def reinforce(seed, method, config, out, progress):
    """RL of one (seed, method) from the seed's SFT checkpoint. Returns the
    per-step training records and the held-out evaluations."""
    torch.manual_seed(seed)
    model = new_model(config)
    model.load_state_dict(torch.load(sft_path(out, config, seed))["model"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["rl_lr"], weight_decay=0.0)
    evaluation, _, held_out = fixed_sets(config)
    digits, rollouts, start = config["digits"], config["rollouts"], time.time()
    train_rows, eval_rows = [], []
    for step in range(config["rl_steps"] + 1):
        if step % config["eval_every"] == 0 or step == config["rl_steps"]:
            row = evaluate(model, evaluation, config, torch.Generator().manual_seed(seed * 1_000_003 + step))
            eval_rows.append(dict(seed=seed, method=method, step=step, **row))
        if step == config["rl_steps"]:
            break
        # The same prompts and sampling seed at this step for every method.
        pairs = task.sample_problems(np.random.default_rng([seed, 2, step]), config["prompts_per_step"], digits,
                                     held_out)
        model.eval()
        prompts, responses, mask, rewards, _ = rollout(model, pairs, rollouts, config,
                                                       torch.Generator().manual_seed(seed * 7_000_003 + step))
        model.train()
        with resrl.torch.capture_hidden(model) as capture:
            logp, _ = response_logp(model, prompts, responses)
        hidden = resrl.torch.response_states(capture.hidden, responses.shape[1])
        advantages = resrl.grpo_advantages(rewards, mask, rollout_n=rollouts)
        # ResRL weights are computed for every method (diagnostics on the same
        # footing); only "resrl" applies them. Paper defaults except the rank.
        weights = resrl.token_weights(hidden, mask, rewards, rollout_n=rollouts, rank=config["rank"], seed=step)
        advantages = resrl.reweight_advantages(advantages, mask, rewards, weights.weights, weighting=method)
        loss, metrics = resrl.torch.policy_loss(logp, logp.detach(), advantages, mask)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config["grad_clip"])
        optimizer.step()
        with torch.no_grad():
            new_logp, _ = response_logp(model, prompts, responses)
        displacement = resrl.positive_likelihood_displacement(new_logp, logp.detach(), mask, rewards)
        summary = resrl.summarize(weights.diagnostics)
        negative = mask & (rewards <= 0)[:, None]
        shared = shared_prefix(responses, mask, rewards, rollouts) & negative
        w = weights.weights
        train_rows.append(dict(
            seed=seed, method=method, step=step, reward=float(rewards.mean()), loss=float(loss),
            clipfrac=float(metrics["clipfrac"]),
            skipped_groups=1.0 - summary["weighted_groups"] / max(summary["groups"], 1),
            negative_weight=float(w[negative].mean()) if negative.any() else float("nan"),
            shared_weight=float(w[shared].mean()) if shared.any() else float("nan"),
            other_weight=float(w[negative & ~shared].mean()) if (negative & ~shared).any() else float("nan"),
            shared_tokens=int(shared.sum()), negative_tokens=int(negative.sum()),
            lld_mean_change=displacement["mean_change"], lld_fraction_decreased=displacement["fraction_decreased"],
        ))
        progress(1)
    return dict(seed=seed, method=method, seconds=round(time.time() - start, 1), train=train_rows, evals=eval_rows)


_counter = None


def _init_worker(counter):
    global _counter
    _counter = counter
    torch.set_num_threads(1)  # one core per process: two runs at a time use the two cores


def _progress(amount):
    with _counter.get_lock():
        _counter.value += amount


def _job(args):
    kind, seed, method, config, out = args
    if kind == "sft":
        return supervised(seed, config, out, _progress)
    return reinforce(seed, method, config, out, _progress)


def run_pool(jobs, total, label, workers):
    """Runs the jobs in `workers` processes with a one-line progress bar."""
    counter = mp.Value("l", 0)
    start = time.time()
    with mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(counter,)) as pool:
        result = pool.map_async(_job, jobs, chunksize=1)
        while not result.ready():
            result.wait(2.0)
            done = min(counter.value, total)
            bar = "#" * int(30 * done / total)
            sys.stderr.write(f"\r{label} [{bar:<30}] {done}/{total} steps {time.time() - start:6.0f} s")
            sys.stderr.flush()
        sys.stderr.write("\n")
        return result.get()


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def final_table(runs, config):
    """Final pass@1 and pass@16 per method: per seed, mean and std over seeds."""
    table = {}
    for method in config["methods"]:
        finals = [r["evals"][-1] for r in runs if r["method"] == method]
        table[method] = {}
        for metric in ("pass@1", "pass@16", "correct_loglik", "entropy"):
            values = [f[metric] for f in finals]
            table[method][metric] = dict(mean=float(np.mean(values)), std=float(np.std(values, ddof=1)) if len(values) > 1
                                         else 0.0, per_seed={str(f["seed"]): f[metric] for f in finals})
    start = [r["evals"][0] for r in runs if r["method"] == config["methods"][0]]
    table["sft"] = {m: dict(mean=float(np.mean([s[m] for s in start])),
                            per_seed={str(s["seed"]): s[m] for s in start})
                    for m in ("pass@1", "pass@16", "correct_loglik", "entropy")}
    return table


def quick_checks(runs):
    """Assertions that fail if the pipeline or the method misbehaves."""
    by = {r["method"]: r for r in runs}
    for run in runs:
        first = run["evals"][0]
        passes = [first[f"pass@{k}"] for k in range(1, K_MAX + 1)]
        assert all(b >= a - 1e-12 for a, b in zip(passes, passes[1:])), f"pass@k not monotone in k: {passes}"
        for row in (r for r in run["train"] if r["negative_tokens"]):
            assert 0.1 - 1e-6 <= row["negative_weight"] <= 1.0 + 1e-6, row
    grpo = [row["reward"] for row in by["grpo"]["train"]]
    third = len(grpo) // 3
    early, late = float(np.mean(grpo[:third])), float(np.mean(grpo[-third:]))
    assert late > early, f"GRPO training reward did not rise: first third {early:.3f}, last third {late:.3f}"
    rows = [row for row in by["resrl"]["train"] if row["shared_tokens"] and row["negative_tokens"] > row["shared_tokens"]]
    shared = float(np.average([r["shared_weight"] for r in rows], weights=[r["shared_tokens"] for r in rows]))
    other = float(np.average([r["other_weight"] for r in rows],
                             weights=[r["negative_tokens"] - r["shared_tokens"] for r in rows]))
    assert shared < other, f"ResRL weight on shared negative tokens {shared:.3f} not below the others' {other:.3f}"
    print(f"quick checks passed: GRPO reward {early:.3f} -> {late:.3f}; ResRL negative-token weight "
          f"shared {shared:.3f} < other {other:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, GRPO and ResRL, few steps; asserts")
    parser.add_argument("--out", default=None, help="output folder (default examples/rlvr/results, quick: a temp dir)")
    parser.add_argument("--workers", type=int, default=2, help="processes, one thread each (default 2)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--rl-lr", type=float, default=None, help="RL learning rate for every method (default 1e-4)")
    parser.add_argument("--images", default=None, help="plot folder (default docs/img/efficacy)")
    args = parser.parse_args()
    config = settings(args.quick)
    if args.rl_lr is not None:
        config["rl_lr"] = args.rl_lr
    here = os.path.dirname(os.path.abspath(__file__))
    if args.out is None:
        args.out = os.path.join("/tmp" if args.quick else here, "rlvr-quick" if args.quick else "results")
    os.makedirs(args.out, exist_ok=True)
    start = time.time()

    sft_jobs = [("sft", s, None, config, args.out) for s in config["seeds"]]
    sft = run_pool(sft_jobs, config["sft_max_steps"] * len(sft_jobs), "SFT", args.workers)
    sft_seconds = time.time() - start
    for meta in sft:
        print(f"SFT seed {meta['seed']}: {meta['steps']} steps, validation pass@1 {meta['val_pass1']:.3f}, "
              f"{meta['seconds']} s")
    rl_jobs = [("rl", s, m, config, args.out) for s in config["seeds"] for m in config["methods"]]
    runs = run_pool(rl_jobs, config["rl_steps"] * len(rl_jobs), "RL ", args.workers)
    wall = time.time() - start

    write_csv(os.path.join(args.out, "train.csv"), [row for r in runs for row in r["train"]])
    write_csv(os.path.join(args.out, "eval.csv"), [row for r in runs for row in r["evals"]])
    table = final_table(runs, config)
    summary = dict(command=" ".join(["python", "examples/rlvr/rlvr.py"] + sys.argv[1:]), config=config,
                   resrl_version=resrl.__version__, torch_version=torch.__version__,
                   date_utc=time.strftime("%Y-%m-%d %H:%M", time.gmtime(start)), wall_seconds=round(wall, 1),
                   sft_wall_seconds=round(sft_seconds, 1), sft=sft,
                   run_seconds={f"{r['method']}/{r['seed']}": r["seconds"] for r in runs}, final=table)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    for method in config["methods"] + ["sft"]:
        t = table[method]
        print(f"{method:12s} pass@1 {t['pass@1']['mean']:.3f} pass@16 {t['pass@16']['mean']:.3f} "
              f"correct loglik {t['correct_loglik']['mean']:.2f}")
    print(f"wall time {wall:.0f} s (SFT {sft_seconds:.0f} s)")
    if args.quick:
        quick_checks(runs)
    elif not args.no_plots:
        import plot
        plot.main(args.out, args.images or os.path.join(here, "..", "..", "docs", "img", "efficacy"))


if __name__ == "__main__":
    main()
