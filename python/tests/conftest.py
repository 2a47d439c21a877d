"""Shared batches of the Python tests (the package under test is whatever
`import resrl` finds: the build tree's with ctest, the installed one after
pip install)."""

import numpy as np
import pytest


class Batch:
    """One micro-batch as a trainer holds it: hidden (B, T, H) float64,
    mask (B, T) bool, per-sample scores (B,) float32, prompt ids (B,) int64
    (groups interleaved, ids not sorted)."""

    def __init__(self, hidden, mask, scores, groups):
        self.hidden, self.mask, self.scores, self.groups = hidden, mask, scores, groups

    @property
    def shape(self):
        return self.mask.shape


def make_batch(seed=0, groups=2, per_group=4, tokens=24, features=48, signal_rank=4, noise=0.05):
    """Positive responses near a rank-`signal_rank` subspace per group (plus
    `noise`); negative responses mix tokens near it with tokens off it, so
    that distances spread and the subspace has a clear spectral gap at
    signal_rank (the randomized solver then finds the exact one)."""
    rng = np.random.default_rng(seed)
    batch = groups * per_group
    ids = np.repeat(np.array([7, -3, 12, 5, 0, 9][:groups], dtype=np.int64), per_group)
    order = rng.permutation(batch)
    ids = ids[order]
    hidden = np.empty((batch, tokens, features))
    bases = {g: np.linalg.qr(rng.standard_normal((features, signal_rank)))[0] for g in np.unique(ids)}
    scores = np.zeros(batch, dtype=np.float32)
    for b in range(batch):
        coords = rng.standard_normal((tokens, signal_rank)) * 3.0
        hidden[b] = coords @ bases[ids[b]].T + noise * rng.standard_normal((tokens, features))
        rank_in_group = np.flatnonzero(ids == ids[b]).tolist().index(b)
        if rank_in_group < per_group // 2:
            scores[b] = 1.0
        else:  # a negative response: half its tokens off the subspace
            off = rng.random(tokens) < 0.5
            hidden[b, off] += rng.standard_normal((off.sum(), features)) * rng.uniform(0.2, 2.0, (off.sum(), 1))
    lengths = rng.integers(tokens // 2, tokens + 1, batch)
    mask = np.arange(tokens)[None, :] < lengths[:, None]
    return Batch(hidden, mask, scores, ids)


@pytest.fixture
def batch():
    return make_batch()


class OneProcess:
    """A communicator of one process (resrl.distributed's protocol): sums
    are the data, a gather is a copy."""

    rank, size = 0, 1

    def sum(self, buffer):
        pass

    def gather(self, send, recv, sizes):
        recv[:] = send
