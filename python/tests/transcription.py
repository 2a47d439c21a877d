"""The formulas of docs/spec.md written out in NumPy / torch float64, the
truth the binding's results are compared with. Nothing here calls resrl."""

import math

import numpy as np

LAYER_NORM_EPS = 1e-5


def sample_totals(scores, mask):
    """Summed score of every response: per-sample scores as given, per-token
    scores summed over the response tokens (spec section 2)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        return scores
    return (scores * (np.asarray(mask) != 0)).sum(axis=1)


def group_rows(batch, groups=None, rollout_n=None):
    """Row indices of every group, in first-appearance order."""
    ids = np.arange(batch) // rollout_n if groups is None else np.asarray(groups)
    order = []
    for g in ids:
        if g not in order:
            order.append(g)
    return [np.flatnonzero(ids == g) for g in order]


def layer_norm(x):
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)  # biased, as torch.layer_norm
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS)


def token_weights(hidden, mask, scores, groups=None, rollout_n=None, excluded=None, rank=64, quantile_low=0.2,
                  quantile_high=0.8, min_weight=0.1):
    """Weights and distances of spec section 3 with the exact subspace
    (numpy.linalg.svd); every group must keep all its positive tokens
    (fewer than max_positive_tokens)."""
    hidden = np.asarray(hidden, dtype=np.float64)
    valid = np.asarray(mask) != 0
    if excluded is not None:
        valid &= np.asarray(excluded) == 0
    batch, tokens, features = hidden.shape
    positive = sample_totals(scores, mask) > 0
    weights = np.ones((batch, tokens))
    distances = np.full((batch, tokens), np.nan)
    for rows in group_rows(batch, groups, rollout_n):
        pos, neg = rows[positive[rows]], rows[~positive[rows]]
        if len(pos) == 0 or len(neg) == 0:
            continue
        x = layer_norm(hidden[pos][valid[pos]])
        k = min(rank, len(x) - 1, features)
        neg_valid = valid[neg]
        if len(x) < 4 or k < 1 or not neg_valid.any():
            continue
        mu = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
        basis = vt[:k].T
        h = layer_norm(hidden[neg][neg_valid]) - mu
        residual = h - (h @ basis) @ basis.T
        d = (residual ** 2).sum(axis=1) / features
        lo, hi = np.quantile(d, [quantile_low, quantile_high])
        spread = max(hi - lo, 1e-6)
        if spread < 1e-5:
            w = np.full_like(d, (min_weight + 1) / 2)
        else:
            w = min_weight + (1 - min_weight) * np.clip((d - lo) / spread, 0, 1)
        block_w, block_d = weights[neg], distances[neg]
        block_w[neg_valid], block_d[neg_valid] = w, d
        weights[neg], distances[neg] = block_w, block_d
    return weights, distances


def grpo_advantages(scores, mask, groups=None, rollout_n=None, normalize_by_std=True, epsilon=1e-6):
    """Spec section 5: per group (s - mean) / (unbiased std + eps); a group
    of one has mean 0 and std 1; broadcast over the response tokens."""
    totals = sample_totals(scores, mask)
    advantage = np.zeros(len(totals))
    for rows in group_rows(len(totals), groups, rollout_n):
        s = totals[rows]
        mean, std = (0.0, 1.0) if len(s) == 1 else (s.mean(), s.std(ddof=1))
        advantage[rows] = (s - mean) / (std + epsilon) if normalize_by_std else s - mean
    return advantage[:, None] * (np.asarray(mask) != 0)


def reweight_advantages(advantages, mask, scores, weights, positive_weight, use_token_weights):
    """Spec section 4."""
    positive = sample_totals(scores, mask) > 0
    scale = np.where(positive[:, None], positive_weight, weights if use_token_weights else 1.0)
    return np.asarray(advantages, dtype=np.float64) * scale * (np.asarray(mask) != 0)


def policy_loss(torch, logp, old_logp, advantages, mask, entropy=None, ref_logp=None, clip_low=0.2, clip_high=0.2,
                clip_ratio_c=3.0, aggregation="token-mean", entropy_coeff=0.0, kl_coeff=0.0, kl="k3"):
    """verl's vanilla clipped loss (spec section 6) in torch float64, so that
    torch autograd differentiates it: (loss, metrics)."""
    valid = (mask != 0).to(torch.float64)
    tokens_total = valid.sum()
    batch, tokens = valid.shape

    def masked_mean(x):
        return (x * valid).sum() / tokens_total

    def aggregate(x):
        per_token = x * valid
        if aggregation == "token-mean":
            return per_token.sum() / tokens_total
        if aggregation == "seq-mean-token-sum":
            return per_token.sum(dim=1).mean()
        if aggregation == "seq-mean-token-mean":
            counts = valid.sum(dim=1)
            return (per_token.sum(dim=1) / counts.clamp(min=1)).sum() / batch
        assert aggregation == "seq-mean-token-sum-norm"
        return per_token.sum() / tokens

    negative_approx_kl = torch.clamp(logp - old_logp, -20.0, 20.0)
    ratio = torch.exp(negative_approx_kl)
    l1 = -advantages * ratio
    l2 = -advantages * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    c1 = torch.maximum(l1, l2)
    l3 = -advantages * clip_ratio_c
    per_token = torch.where(advantages < 0, torch.minimum(l3, c1), c1)
    pg_loss = aggregate(per_token)
    loss = pg_loss
    metrics = {
        "pg_loss": pg_loss,
        "clipfrac": masked_mean((l2 > l1).to(torch.float64)),
        "ppo_kl": masked_mean(-negative_approx_kl),
        "clipfrac_lower": masked_mean(((c1 > l3) & (advantages < 0)).to(torch.float64)),
        "tokens": tokens_total,
    }
    if entropy is not None:
        metrics["entropy"] = aggregate(entropy)
        loss = loss - entropy_coeff * metrics["entropy"]
    if ref_logp is not None:
        diff = logp - ref_logp
        if kl == "k1":
            kl_tokens = diff
        elif kl == "abs":
            kl_tokens = diff.abs()
        elif kl == "k2":
            kl_tokens = 0.5 * diff ** 2
        else:
            log_ratio = torch.clamp(ref_logp - logp, -20.0, 20.0)
            kl_tokens = torch.clamp(torch.exp(log_ratio) - log_ratio - 1, -10.0, 10.0)
        metrics["kl_loss"] = aggregate(kl_tokens)
        loss = loss + kl_coeff * metrics["kl_loss"]
    return loss, metrics


def length_scaled_rewards(rewards, lengths, start=3500, end=4096, floor=0.7):
    """Spec section 7."""
    out = []
    for r, n in zip(rewards, lengths):
        if r <= 0 or n <= start:
            out.append(r)
        elif end <= start or n >= end:
            out.append(r * floor)
        else:
            out.append(r * (1 - (1 - floor) * (n - start) / (end - start)))
    return np.array(out)


def pass_at_k(n, c, k):
    """Spec section 8: 1 - C(n - c, k) / C(n, k)."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def positive_likelihood_displacement(logp, old_logp, mask, scores):
    """Spec section 9: summed log-likelihood change of the positive responses."""
    positive = sample_totals(scores, mask) > 0
    change = ((np.asarray(logp, np.float64) - old_logp) * (np.asarray(mask) != 0)).sum(axis=1)[positive]
    if len(change) == 0:
        return 0.0, 0.0, 0
    return change.mean(), (change < 0).mean(), len(change)
