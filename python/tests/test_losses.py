"""GRPO advantages, reweighting, the policy loss, length penalty, Pass@k and
the displacement monitor on NumPy arrays (and the loss on torch tensors)
against the transcriptions of spec sections 4 to 9."""

import math

import numpy as np
import pytest

import resrl
import transcription

MASK_TYPES = [np.bool_, np.uint8, np.int32, np.int64, np.float32, np.float64]


@pytest.fixture
def small():
    rng = np.random.default_rng(3)
    B, T = 8, 10
    mask = np.arange(T)[None, :] < rng.integers(1, T + 1, B)[:, None]
    return rng, mask, np.array([3, 1, 3, 1, 2, 2, 3, 4], np.int64)


@pytest.mark.parametrize("mask_type", MASK_TYPES)
@pytest.mark.parametrize("normalize_by_std", [True, False])
def test_grpo_advantages(small, mask_type, normalize_by_std):
    rng, mask, groups = small
    scores = rng.integers(0, 2, len(groups)).astype(np.float32)
    got = resrl.grpo_advantages(scores, mask.astype(mask_type), groups, normalize_by_std=normalize_by_std)
    want = transcription.grpo_advantages(scores, mask, groups, normalize_by_std=normalize_by_std)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_grpo_advantages_of_token_scores_and_rollouts(small):
    rng, mask, _ = small
    per_token = rng.standard_normal(mask.shape).astype(np.float32)
    got = resrl.grpo_advantages(per_token, mask, rollout_n=4)
    np.testing.assert_allclose(got, transcription.grpo_advantages(per_token, mask, rollout_n=4), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("weighting, positive_weight, use_weights",
                         [("grpo", 1.0, False), ("w_reinforce", 0.1, False), ("nsr", 0.0, False),
                          ("resrl", 0.1, True)])
def test_reweight_advantages_presets(small, weighting, positive_weight, use_weights):
    rng, mask, _ = small
    advantages = rng.standard_normal(mask.shape).astype(np.float32)
    scores = rng.integers(0, 2, mask.shape[0]).astype(np.float32)
    weights = rng.uniform(0.1, 1, mask.shape).astype(np.float32)
    got = resrl.reweight_advantages(advantages, mask, scores, weights, weighting=weighting)
    want = transcription.reweight_advantages(advantages, mask, scores, weights, positive_weight, use_weights)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    custom = resrl.reweight_advantages(advantages, mask, scores, weights, weighting=weighting, positive_weight=0.5)
    want = transcription.reweight_advantages(advantages, mask, scores, weights, 0.5, use_weights)
    np.testing.assert_allclose(custom, want, rtol=1e-6, atol=1e-7)


def loss_inputs(seed, shape=(6, 12), real=np.float64):
    rng = np.random.default_rng(seed)
    old = rng.normal(-1.0, 0.5, shape)
    logp = old + rng.normal(0, 0.3, shape)  # ratios on both sides of both clips
    logp[0, :3] = old[0, :3] + np.array([25.0, -25.0, 1.5])  # the +-20 clamp and the dual clip
    advantages = rng.standard_normal(shape)
    mask = np.arange(shape[1])[None, :] < rng.integers(1, shape[1] + 1, shape[0])[:, None]
    entropy = rng.uniform(0, 2, shape)
    ref = old + rng.normal(0, 0.4, shape)
    return [x.astype(real) for x in (logp, old, advantages)] + [mask] + [x.astype(real) for x in (entropy, ref)]


AGGREGATIONS = ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
@pytest.mark.parametrize("kl", ["k1", "abs", "k2", "k3"])
@pytest.mark.parametrize("real", [np.float32, np.float64])
def test_policy_loss_and_gradient(aggregation, kl, real):
    torch = pytest.importorskip("torch")
    logp, old, adv, mask, entropy, ref = loss_inputs(4, real=real)
    settings = dict(clip_low=0.2, clip_high=0.28, clip_ratio_c=3.0, aggregation=aggregation, entropy_coeff=0.01,
                    kl_coeff=0.05, kl=kl)
    got = resrl.policy_loss(logp, old, adv, mask, entropy=entropy, ref_logp=ref, grad=True, **settings)
    t = {name: torch.tensor(x.astype(np.float64)) for name, x in
         dict(logp=logp, old_logp=old, advantages=adv, entropy=entropy, ref_logp=ref).items()}
    t["logp"].requires_grad_(True)
    t["entropy"].requires_grad_(True)
    loss, metrics = transcription.policy_loss(torch, mask=torch.tensor(mask), **t, **settings)
    loss.backward()
    tolerance = dict(rtol=1e-5, atol=1e-7) if real == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got.loss, loss.item(), **tolerance)
    for name, value in metrics.items():
        np.testing.assert_allclose(got.metrics[name], value.item(), **tolerance, err_msg=name)
    assert got.dlogp.dtype == real and got.dentropy.dtype == real
    np.testing.assert_allclose(got.dlogp, t["logp"].grad.numpy(), **tolerance)
    np.testing.assert_allclose(got.dentropy, t["entropy"].grad.numpy(), **tolerance)


@pytest.mark.parametrize("mask_type", MASK_TYPES)
def test_policy_loss_mask_types_and_gradient_buffer(mask_type):
    logp, old, adv, mask, _, _ = loss_inputs(5)
    storage = np.full((mask.shape[0], mask.shape[1] + 2), 7.0)
    dlogp = storage[:, : mask.shape[1]]
    plain = resrl.policy_loss(logp, old, adv, mask, grad=True)
    got = resrl.policy_loss(logp, old, adv, mask.astype(mask_type), dlogp=dlogp)
    assert got.dlogp is dlogp and (storage[:, -2:] == 7).all()
    assert got.loss == plain.loss
    np.testing.assert_array_equal(dlogp, plain.dlogp)


def test_length_scaled_rewards():
    rewards = np.array([1.0, 1.0, 1.0, 1.0, -1.0, 0.0], np.float32)
    lengths = np.array([100, 3500, 3800, 5000, 5000, 5000])
    got = resrl.length_scaled_rewards(rewards, lengths)
    np.testing.assert_allclose(got, transcription.length_scaled_rewards(rewards, lengths), rtol=1e-6)
    got = resrl.length_scaled_rewards([1.0, 1.0], [10, 30], start=10, end=40, floor=0.5)
    np.testing.assert_allclose(got, transcription.length_scaled_rewards([1, 1], [10, 30], 10, 40, 0.5), rtol=1e-6)


def test_pass_at_k_and_avg_at_k():
    samples, correct = [16, 16, 8, 4], [0, 3, 8, 1]
    for k in (1, 2, 4):
        want = np.mean([transcription.pass_at_k(n, c, k) for n, c in zip(samples, correct)])
        assert math.isclose(resrl.mean_pass_at_k(samples, correct, k), want, rel_tol=1e-12)
    assert math.isclose(resrl.pass_at_k(16, 3, 4), transcription.pass_at_k(16, 3, 4), rel_tol=1e-12)
    assert resrl.avg_at_k(16, 4) == 0.25


def test_positive_likelihood_displacement():
    logp, old, _, mask, _, _ = loss_inputs(6)
    scores = np.array([1, 0, 1, 1, 0, 1], np.float32)
    got = resrl.positive_likelihood_displacement(logp, old, mask, scores)
    mean, fraction, count = transcription.positive_likelihood_displacement(logp, old, mask, scores)
    assert got["positive_samples"] == count
    np.testing.assert_allclose([got["mean_change"], got["fraction_decreased"]], [mean, fraction], rtol=1e-12)
