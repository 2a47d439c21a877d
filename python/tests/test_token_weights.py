"""resrl.token_weights on NumPy arrays against the transcription of spec
section 3: every hidden and mask type, strided layouts, groupings, the
diagnostics, and the zero-copy contract (inputs seen in place, out= written
in place)."""

import numpy as np
import pytest

import resrl
import transcription
from conftest import make_batch

MASK_TYPES = [np.bool_, np.uint8, np.int32, np.int64, np.float32, np.float64]
# Weights are an affine map of fp32 distances; the exact solver agrees with
# the float64 SVD to a few fp32 ulps of the distances.
WEIGHT_TOLERANCE = 2e-4


def reference(hidden, mask, scores, groups=None, rollout_n=None, **settings):
    return transcription.token_weights(np.asarray(hidden, np.float64), mask, scores, groups, rollout_n, **settings)


def check_weights(result, hidden, mask, scores, groups=None, rollout_n=None, **settings):
    want_w, want_d = reference(hidden, mask, scores, groups, rollout_n, **settings)
    np.testing.assert_allclose(result.weights, want_w, atol=WEIGHT_TOLERANCE, rtol=0)
    if result.distances is not None:
        np.testing.assert_allclose(result.distances, want_d, rtol=1e-4, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("hidden_type", [np.float32, np.float64, np.float16])
def test_hidden_types_match_the_transcription(batch, hidden_type):
    hidden = batch.hidden.astype(hidden_type)  # the reference reads the same rounded values
    result = resrl.token_weights(hidden, batch.mask, batch.scores, batch.groups, rank=4, solver="exact",
                                 distances=True)
    assert result.weights.dtype == np.float32 and result.weights.shape == batch.shape
    check_weights(result, hidden, batch.mask, batch.scores, batch.groups, rank=4)


@pytest.mark.parametrize("mask_type", MASK_TYPES)
def test_every_mask_type_gives_the_same_weights(batch, mask_type):
    result = resrl.token_weights(batch.hidden, batch.mask.astype(mask_type), batch.scores, batch.groups, rank=4,
                                 solver="exact")
    check_weights(result, batch.hidden, batch.mask, batch.scores, batch.groups, rank=4)


def test_randomized_solver_finds_the_subspace_of_a_clear_gap(batch):
    result = resrl.token_weights(batch.hidden.astype(np.float32), batch.mask, batch.scores, batch.groups, rank=4)
    want, _ = reference(batch.hidden.astype(np.float32), batch.mask, batch.scores, batch.groups, rank=4)
    np.testing.assert_allclose(result.weights, want, atol=2e-3, rtol=0)


def test_strided_layouts_are_read_in_place():
    b = make_batch(seed=1)
    B, T, H = b.hidden.shape
    # Padding after each token's features and after each response's tokens.
    padded = np.full((B, T + 3, H + 5), np.nan, np.float32)
    padded[:, :T, :H] = b.hidden
    hidden = padded[:, :T, :H]
    mask_storage = np.zeros((T, B), np.uint8)
    mask_storage[:] = b.mask.T
    mask = mask_storage.T  # column-major (B, T)
    info = resrl._resrl.array_info(hidden)
    assert info["data"] == hidden.ctypes.data and info["strides"] == [(T + 3) * (H + 5), H + 5, 1]
    assert resrl._resrl.array_info(mask)["strides"] == [1, B]
    result = resrl.token_weights(hidden, mask, b.scores, b.groups, rank=4, solver="exact")
    check_weights(result, b.hidden.astype(np.float32), b.mask, b.scores, b.groups, rank=4)


def test_token_level_scores_and_rollout_grouping():
    b = make_batch(seed=2, groups=3)
    order = np.argsort(b.groups, kind="stable")  # consecutive runs of 4 responses
    hidden, mask = b.hidden[order], b.mask[order]
    per_token = np.zeros(b.shape, np.float32)
    per_token[np.arange(len(order)), 0] = b.scores[order]  # the score on the first token
    result = resrl.token_weights(hidden, mask, per_token, rollout_n=4, rank=4, solver="exact")
    check_weights(result, hidden, mask, per_token, rollout_n=4, rank=4)


def test_excluded_tokens_keep_weight_one_and_leave_the_statistics(batch):
    excluded = np.zeros(batch.shape, bool)
    excluded[:, 2:6] = True
    result = resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, excluded=excluded, rank=4,
                                 solver="exact")
    check_weights(result, batch.hidden, batch.mask, batch.scores, batch.groups, rank=4, excluded=excluded)
    assert (result.weights[:, 2:6] == 1).all()


def test_settings_reach_the_library(batch):
    settings = dict(rank=3, quantile_low=0.1, quantile_high=0.6, min_weight=0.25)
    result = resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, solver="exact", **settings)
    check_weights(result, batch.hidden, batch.mask, batch.scores, batch.groups, **settings)
    assert result.weights.min() >= 0.25 - 1e-7


def test_diagnostics_hold_every_field_per_group(batch):
    result = resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, rank=4, solver="exact",
                                 distances=True)
    records = result.diagnostics
    assert records.dtype == resrl.GROUP_DIAGNOSTICS_DTYPE
    assert list(records["group_id"]) == list(dict.fromkeys(batch.groups))  # first-appearance order
    _, want_d = reference(batch.hidden, batch.mask, batch.scores, batch.groups, rank=4)
    positive = batch.scores > 0
    for record in records:
        rows = batch.groups == record["group_id"]
        neg = rows & ~positive
        d = want_d[neg][batch.mask[neg]]
        assert record["positive_samples"] == (rows & positive).sum()
        assert record["negative_samples"] == neg.sum()
        assert record["positive_tokens"] == record["positive_tokens_used"] == batch.mask[rows & positive].sum()
        assert record["negative_tokens"] == len(d)
        assert record["rank"] == 4 and resrl.SkipReason(record["skipped"]) == resrl.SkipReason.none
        np.testing.assert_allclose([record["quantile_low_value"], record["quantile_high_value"]],
                                   np.quantile(d, [0.2, 0.8]), rtol=1e-4)
        np.testing.assert_allclose(record["distance_mean"], d.mean(), rtol=1e-4)
        w = result.weights[neg][batch.mask[neg]]
        np.testing.assert_allclose([record["weight_mean"], record["weight_min"], record["weight_max"]],
                                   [w.mean(), w.min(), w.max()], rtol=1e-5)
    summary = resrl.summarize(records)
    assert summary["groups"] == len(records) and summary["positive_sample_ratio"] == positive.mean()


def test_a_group_without_negatives_is_skipped_with_weight_one(batch):
    scores = np.ones_like(batch.scores)
    result = resrl.token_weights(batch.hidden, batch.mask, scores, batch.groups, rank=4)
    assert (result.weights == 1).all()
    assert all(resrl.SkipReason(r) == resrl.SkipReason.no_negative_samples for r in result.diagnostics["skipped"])


def test_out_buffers_are_written_in_place(batch):
    B, T = batch.shape
    storage = np.full((B, T + 4), -1.0, np.float32)
    out = storage[:, :T]
    distances = np.empty((B, T), np.float32)
    result = resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, rank=4, solver="exact",
                                 out=out, distances=distances, diagnostics=False)
    assert result.weights is out and result.distances is distances and result.diagnostics is None
    assert (storage[:, T:] == -1).all()  # the padding is untouched
    check_weights(result, batch.hidden, batch.mask, batch.scores, batch.groups, rank=4)


def test_contiguous_inputs_are_seen_in_place(batch):
    for array in (batch.hidden, batch.mask, batch.scores, batch.groups):
        info = resrl._resrl.array_info(array)
        assert info["data"] == array.ctypes.data
        assert info["shape"] == list(array.shape)


def test_fast_preset_and_thread_count_do_not_change_the_contract(batch):
    one = resrl.token_weights(batch.hidden.astype(np.float32), batch.mask, batch.scores, batch.groups, rank=4,
                              threads=1, **resrl.FAST)
    two = resrl.token_weights(batch.hidden.astype(np.float32), batch.mask, batch.scores, batch.groups, rank=4,
                              threads=2, **resrl.FAST)
    np.testing.assert_array_equal(one.weights, two.weights)  # bitwise for any thread count
    assert ((one.weights >= 0.1 - 1e-7) & (one.weights <= 1)).all()


def test_count_groups_and_think_spans():
    assert resrl.count_groups(6, groups=[3, 1, 3, 2, 1, 2]) == 3
    assert resrl.count_groups(8, rollout_n=4) == 2
    ids = np.array([[5, 1, 2, 6, 3], [1, 6, 5, 2, 2]], np.int64)
    np.testing.assert_array_equal(resrl.think_span_mask(ids, [5], [6]), [[1, 1, 1, 1, 0], [0, 1, 1, 1, 1]])
