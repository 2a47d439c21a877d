"""ResRL in verl's actor (docs/integrations.md): the reweighted advantages
of one micro-batch of `DataParallelPPOActor.update_policy`, as the ResRL
reference computes them there, from what the actor holds.

Requires torch (the actor's tensors); verl itself is not imported.
"""

import hashlib
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

import resrl
import resrl.distributed

__all__ = ["global_group_ids", "group_ids", "metrics", "reweight_advantages"]


def group_ids(uid: Union[np.ndarray, Sequence[Any]]) -> np.ndarray:
    """verl's per-response prompt ids (`non_tensor_batch["uid"]`: strings,
    or any hashable values) as int64 group ids 0, 1, ... in order of first
    appearance."""
    ids: Dict[Any, int] = {}
    return np.fromiter((ids.setdefault(u, len(ids)) for u in uid), dtype=np.int64, count=len(uid))


def global_group_ids(uid: Union[np.ndarray, Sequence[Any]]) -> np.ndarray:
    """int64 group ids that every process derives alike from the same uid
    (the first 8 bytes of a BLAKE2b hash of str(uid)): `group_ids` numbers
    uids in local order, which differs between processes. Distinct uids
    collide with probability about n^2 / 2^65 for n uids per step."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=8).digest(), "little",
                                       signed=True) for u in uid), dtype=np.int64, count=len(uid))


def metrics(diagnostics: np.ndarray, prefix: str = "resrl/") -> Dict[str, float]:
    """The token-weight diagnostics of one call as a flat metrics dict in
    verl's style (floats, keys `prefix` + name): groups, weighted_groups,
    skipped_groups and the count per skip reason (skipped_<reason>),
    positive/negative samples, positive_sample_ratio, weighted_tokens (the
    negative tokens of weighted groups), mean/min/max_neg_weight over those
    tokens (1 when no group was weighted) and mean_rank of weighted groups."""
    summary = resrl.summarize(diagnostics)
    weighted = diagnostics["skipped"] == resrl.SkipReason.none.value
    values: Dict[str, float] = {
        "groups": summary["groups"],
        "weighted_groups": summary["weighted_groups"],
        "skipped_groups": summary["groups"] - summary["weighted_groups"],
        "positive_samples": summary["positive_samples"],
        "negative_samples": summary["negative_samples"],
        "positive_sample_ratio": summary["positive_sample_ratio"],
        "weighted_tokens": summary["weighted_tokens"],
        "mean_neg_weight": summary["mean_weight"],
        "min_neg_weight": summary["min_weight"],
        "max_neg_weight": summary["max_weight"],
        "mean_rank": diagnostics["rank"][weighted].mean() if weighted.any() else 0.0,
    }
    for reason in resrl.SkipReason.__members__.values():
        if reason != resrl.SkipReason.none:
            values[f"skipped_{reason.name}"] = np.count_nonzero(diagnostics["skipped"] == reason.value)
    return {prefix + name: float(value) for name, value in values.items()}


def reweight_advantages(
    uid: Optional[Union[np.ndarray, Sequence[Any]]],
    response_mask: torch.Tensor,
    token_level_scores: torch.Tensor,
    advantages: torch.Tensor,
    hidden_states: torch.Tensor,
    *,
    svd_rank: int = 64,
    svd_max_pos_tokens: int = 4096,
    svd_quantile_low: float = 0.2,
    svd_quantile_high: float = 0.8,
    svd_min_weight: float = 0.1,
    svd_pos_weight: float = 0.1,
    rollout_n: Optional[int] = None,
    process_group: Any = None,
    **token_weight_settings: Any,
) -> Tuple[torch.Tensor, Dict[str, float]]:
    """ResRL advantages of one micro-batch of verl's update_policy, and the
    group diagnostics as metrics (see `metrics`).

    uid: `non_tensor_batch["uid"]` of the micro-batch (B prompt ids), or None
    to group consecutive runs of `rollout_n` responses (the reference's
    fallback). response_mask, token_level_scores, advantages: (B, R) tensors
    of the micro-batch; hidden_states: (B, R, H) penultimate-layer states
    aligned with the response tokens (resrl.torch.capture_hidden, then
    resrl.torch.response_states), any float type, detached or not (no
    gradient flows to them). A response is positive iff its masked score sum
    is > 0, as in the reference.

    Returns advantages * response_mask with positive responses scaled by
    svd_pos_weight and every response token of a negative response by its
    ResRL weight (in [svd_min_weight, 1]; 1 in groups without both positive
    and negative responses), in advantages' dtype and device. Weights come
    from the groups' rows in this micro-batch only, as in the reference.
    token_weight_settings: further resrl.token_weights settings (solver,
    power_iterations, oversampling, seed, gemm, excluded, threads).

    process_group: the data-parallel process group (a torch.distributed
    ProcessGroup, or a resrl.distributed.Communicator) when a prompt's
    responses are spread over its processes (verl's balance_batch): every
    process of the group calls this together, for its micro-batch, and the
    rows of a group in all their micro-batches are weighted as one group
    (docs/integrations.md). uids are then hashed to ids every process shares
    (`global_group_ids`); `rollout_n` counts in the processes' micro-batches
    concatenated in rank order. CUDA inputs stay on the device: on an NCCL
    group the collectives move the library's device buffers; on a gloo
    group the library stages each collective's buffers through the host
    (resrl.distributed.buffer_space), never the B x R x H states.
    """
    if uid is None and rollout_n is None:
        raise ValueError("reweight_advantages: pass uid (the prompt ids) or rollout_n")
    scores = token_level_scores.detach().to(torch.float32)
    comm = resrl.distributed.as_communicator(process_group)
    if uid is None:
        groups = None
    else:
        groups = group_ids(uid) if comm is None else global_group_ids(uid)
    result = resrl.token_weights(
        hidden_states.detach(), response_mask, scores, groups, rollout_n, rank=svd_rank,
        max_positive_tokens=svd_max_pos_tokens, quantile_low=svd_quantile_low, quantile_high=svd_quantile_high,
        min_weight=svd_min_weight, comm=comm, **token_weight_settings)
    threads = token_weight_settings.get("threads", 0)
    weighted = resrl.reweight_advantages(advantages.detach().to(torch.float32), response_mask, scores,
                                         result.weights.to(advantages.device), weighting="resrl",
                                         positive_weight=svd_pos_weight, threads=threads)
    return weighted.to(advantages.dtype), metrics(result.diagnostics)
