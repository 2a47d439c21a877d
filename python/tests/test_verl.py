"""resrl.integrations.verl.reweight_advantages against the reference's
update_policy written out in NumPy float64 (transcription.py: layer norm,
numpy.linalg.svd of the centred positives, 'linear' quantiles, clamped
weights; positives x pos_weight, negatives x weight) on a micro-batch with
string uids in shuffled order, verl-style token-level scores and one group
without a correct response."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import resrl  # noqa: E402
import resrl.torch  # noqa: E402
import transcription  # noqa: E402
from conftest import make_batch  # noqa: E402
from resrl.integrations import verl  # noqa: E402

RANK = 4


class MicroBatch:
    """What verl's actor holds: uid strings (B,), response_mask (B, T)
    int64, token_level_scores (B, T) with the reward on the last response
    token, GRPO advantages (B, T), hidden states (B, T, H); plus the int ids
    of the transcription."""

    def __init__(self, seed=0):
        batch = make_batch(seed=seed, groups=3, per_group=4)
        batch.scores[batch.groups == batch.groups[0]] = 0.0  # the first group has no correct response
        self.ids = batch.groups
        self.uid = np.array([f"prompt-{g}" for g in batch.groups], dtype=object)
        self.mask = torch.tensor(batch.mask, dtype=torch.int64)
        scores = np.zeros(batch.mask.shape, dtype=np.float32)
        last = batch.mask.sum(axis=1) - 1
        scores[np.arange(len(last)), last] = batch.scores
        self.scores = torch.tensor(scores)
        self.advantages = torch.tensor(transcription.grpo_advantages(scores, batch.mask, batch.groups),
                                       dtype=torch.float32)
        self.hidden = torch.tensor(batch.hidden, dtype=torch.float32)


def reference(mb, pos_weight=0.1, min_weight=0.1):
    weights, _ = transcription.token_weights(mb.hidden.double().numpy(), mb.mask.numpy(), mb.scores.numpy(), mb.ids,
                                             rank=RANK, min_weight=min_weight)
    advantages = transcription.reweight_advantages(mb.advantages.numpy(), mb.mask.numpy(), mb.scores.numpy(), weights,
                                                   pos_weight, use_token_weights=True)
    return torch.tensor(advantages, dtype=torch.float32), weights


def test_group_ids_in_first_appearance_order():
    assert verl.group_ids(np.array(["b", "a", "b", "c", "a"], dtype=object)).tolist() == [0, 1, 0, 2, 1]
    assert verl.group_ids(["x", "x"]).dtype == np.int64


@pytest.mark.parametrize("pos_weight, min_weight", [(0.1, 0.1), (0.5, 0.3)])
def test_advantages_as_the_reference_computes_them(pos_weight, min_weight):
    mb = MicroBatch()
    got, metrics = verl.reweight_advantages(mb.uid, mb.mask, mb.scores, mb.advantages, mb.hidden, svd_rank=RANK,
                                            svd_pos_weight=pos_weight, svd_min_weight=min_weight, solver="exact")
    want, weights = reference(mb, pos_weight, min_weight)
    assert got.dtype == torch.float32 and got.shape == mb.advantages.shape
    torch.testing.assert_close(got, want, atol=2e-4, rtol=0)

    negative = (mb.scores * mb.mask).sum(1).numpy() <= 0
    weighted_rows = negative & (mb.ids != mb.ids[0])
    tokens = weights[weighted_rows][mb.mask.numpy()[weighted_rows] != 0]
    assert metrics["resrl/groups"] == 3
    assert metrics["resrl/weighted_groups"] == 2
    assert metrics["resrl/skipped_groups"] == 1
    assert metrics["resrl/skipped_no_positive_samples"] == 1
    assert metrics["resrl/positive_samples"] == 4 and metrics["resrl/negative_samples"] == 8
    assert metrics["resrl/positive_sample_ratio"] == pytest.approx(4 / 12)
    assert metrics["resrl/weighted_tokens"] == tokens.size
    assert metrics["resrl/mean_neg_weight"] == pytest.approx(tokens.mean(), abs=2e-4)
    assert metrics["resrl/min_neg_weight"] == pytest.approx(tokens.min(), abs=2e-4)
    assert metrics["resrl/max_neg_weight"] == pytest.approx(tokens.max(), abs=2e-4)
    assert metrics["resrl/mean_rank"] == RANK
    assert all(key.startswith("resrl/") and isinstance(value, float) for key, value in metrics.items())


def test_uid_list_rollout_n_and_inputs_that_require_grad():
    mb = MicroBatch(seed=1)
    want, _ = verl.reweight_advantages(mb.uid, mb.mask, mb.scores, mb.advantages, mb.hidden, svd_rank=RANK,
                                       solver="exact")
    hidden = mb.hidden.clone().requires_grad_()
    got, _ = verl.reweight_advantages(list(mb.uid), mb.mask, mb.scores, mb.advantages.double(), hidden,
                                      svd_rank=RANK, solver="exact")
    assert got.dtype == torch.float64  # advantages' dtype
    torch.testing.assert_close(got.float(), want, atol=0, rtol=0)
    assert hidden.grad is None

    # Without uids, consecutive runs of rollout_n responses are the groups.
    order = np.argsort(mb.ids, kind="stable")
    by_group, _ = verl.reweight_advantages(None, mb.mask[order], mb.scores[order], mb.advantages[order],
                                           mb.hidden[order], svd_rank=RANK, solver="exact", rollout_n=4)
    torch.testing.assert_close(by_group, want[order], atol=0, rtol=0)
    with pytest.raises(ValueError, match="uid"):
        verl.reweight_advantages(None, mb.mask, mb.scores, mb.advantages, mb.hidden)


def test_matches_the_library_calls_it_wraps():
    mb = MicroBatch(seed=2)
    got, _ = verl.reweight_advantages(mb.uid, mb.mask, mb.scores, mb.advantages, mb.hidden, svd_rank=RANK)
    weights = resrl.torch.token_weights(mb.hidden, mb.mask, mb.scores, torch.tensor(verl.group_ids(mb.uid)),
                                        rank=RANK)
    want = resrl.reweight_advantages(mb.advantages, mb.mask, mb.scores, weights, weighting="resrl")
    torch.testing.assert_close(got, want, atol=0, rtol=0)


def test_with_states_captured_from_a_model():
    """The documented flow: capture during the actor's forward, align with
    response_states, reweight; the same as with the states by hand."""
    from test_capture import CausalLM, last_block_input

    torch.manual_seed(6)
    model = CausalLM()
    response = 6
    ids = torch.randint(0, 13, (8, 11))
    uid = np.array(["q1", "q0"] * 4, dtype=object)
    mask = torch.ones(8, response, dtype=torch.int64)
    mask[::3, -2:] = 0
    scores = torch.zeros(8, response)
    scores[[0, 1, 4, 5], 3] = 1.0
    advantages = torch.randn(8, response)
    with resrl.torch.capture_hidden(model) as capture:
        model(ids)
    hidden = resrl.torch.response_states(capture.hidden, response)
    got, metrics = verl.reweight_advantages(uid, mask, scores, advantages, hidden, svd_rank=RANK, solver="exact")
    by_hand = last_block_input(model.model, ids)[:, -response - 1 : -1]
    want, _ = verl.reweight_advantages(uid, mask, scores, advantages, by_hand, svd_rank=RANK, solver="exact")
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert metrics["resrl/weighted_groups"] == 2
