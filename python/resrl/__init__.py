"""resrl: ResRL token weights and the RLVR losses around them, for NumPy
arrays and PyTorch tensors (CPU and CUDA), without copies.

Inputs are any DLPack producer (NumPy, torch, ...): fp32/fp64/fp16/bf16
hidden states (bf16 through torch), masks of bool/uint8/int32/int64/
float32/float64, strided views where the library takes the strides. Outputs
come back in the inputs' framework and device (torch tensors for torch
inputs, NumPy arrays otherwise) or are written into out= buffers.

On CUDA a call runs on `stream` (default: PyTorch's current stream for torch
tensors, else the default stream) and waits for it before returning, so that
bad values raise here as they do on the host. Work queued earlier on that
stream is ordered before the call; work on other streams is not (nanobind
does not synchronise DLPack producers): pass their stream, or synchronise.
The GIL is released while the library computes.

Errors: resrl.InvalidArgument (a ValueError) names the argument and what was
expected; resrl.NonFiniteInput (an InvalidArgument) names the first NaN/Inf;
a TypeError names an argument of an unsupported type. The settings and
formulas are those of the C++ library (README.md, docs/spec.md).
"""

from contextlib import nullcontext
from typing import NamedTuple, Optional

import numpy as np

from . import _resrl, distributed
from ._arrays import as_vector, empty, enum_member, exportable, host_numpy, shape_of, stream_of
from ._resrl import (
    AdvantageWeighting,
    Error,
    GemmPrecision,
    GrpoParams,
    InvalidArgument,
    KlEstimator,
    LengthPenaltyParams,
    LossAggregation,
    NonFiniteInput,
    NumericalError,
    PolicyLossParams,
    SkipReason,
    Solver,
    TokenWeightParams,
    WorkspaceTooSmall,
    __version__,
    avg_at_k,
    cuda_enabled,
    pass_at_k,
)

__all__ = [
    "AdvantageWeighting", "Error", "FAST", "GemmPrecision", "GROUP_DIAGNOSTICS_DTYPE", "GrpoParams",
    "InvalidArgument", "KlEstimator", "LengthPenaltyParams", "LossAggregation", "NonFiniteInput", "NumericalError",
    "PolicyLoss", "PolicyLossParams", "SkipReason", "Solver", "TokenWeightParams", "TokenWeights",
    "WorkspaceTooSmall", "__version__", "avg_at_k", "count_groups", "cuda_enabled", "grpo_advantages",
    "length_scaled_rewards", "mean_pass_at_k", "pass_at_k", "policy_loss", "positive_likelihood_displacement",
    "reweight_advantages", "summarize", "think_span_mask", "token_weights",
]

#: One record of token_weights diagnostics per prompt group (first-appearance
#: order): every field of the library's group_diagnostics. `skipped` holds a
#: SkipReason value (SkipReason(record["skipped"]) names it).
GROUP_DIAGNOSTICS_DTYPE = np.dtype(
    {
        "names": [name for name, _, _ in _resrl.group_diagnostics_fields()],
        "formats": [fmt for _, fmt, _ in _resrl.group_diagnostics_fields()],
        "offsets": [offset for _, _, offset in _resrl.group_diagnostics_fields()],
        "itemsize": _resrl.group_diagnostics_itemsize,
    }
)

#: The fast token-weight preset (token_weight_params::fast()):
#: resrl.token_weights(..., **resrl.FAST).
FAST = {"power_iterations": 1, "oversampling": 48, "gemm": "bf16"}


class TokenWeights(NamedTuple):
    weights: object  #: (B, T) float32, in [min_weight, 1]
    diagnostics: Optional[np.ndarray]  #: GROUP_DIAGNOSTICS_DTYPE records, or None
    distances: object = None  #: (B, T) float32 residual distances (NaN where none), when asked for


class PolicyLoss(NamedTuple):
    loss: float
    metrics: dict  #: pg_loss, clipfrac, ppo_kl, clipfrac_lower, entropy, kl_loss, tokens
    dlogp: object = None  #: d loss / d logp, when asked for
    dentropy: object = None  #: d loss / d entropy, when asked for with an entropy input


def _params(settings_type, **values):
    """A settings object of the module holding `values`; a value of the wrong
    type is a TypeError naming its argument."""
    params = settings_type()
    for name, value in values.items():
        try:
            setattr(params, name, value)
        except TypeError:
            expected = type(getattr(params, name)).__name__
            raise TypeError(f"{name}: expected {expected}, got {value!r}") from None
    return params


def _groups(groups):
    return as_vector(groups, "int64", "groups")


def count_groups(batch, groups=None, rollout_n=None):
    """Number of prompt groups of `batch` responses (ids or rollout_n)."""
    return _resrl.count_groups(_groups(groups), rollout_n or 0, batch)


def token_weights(
    hidden,
    mask,
    scores,
    groups=None,
    rollout_n=None,
    excluded=None,
    *,
    rank=64,
    max_positive_tokens=4096,
    quantile_low=0.2,
    quantile_high=0.8,
    min_weight=0.1,
    solver="randomized",
    power_iterations=4,
    oversampling=0,
    seed=0,
    gemm="full",
    diagnostics=True,
    distances=False,
    out=None,
    threads=0,
    stream=None,
    comm=None,
) -> TokenWeights:
    """ResRL token weights of one micro-batch (docs/spec.md section 3).

    hidden: (B, T, H) penultimate-layer states (fp32/fp64/fp16/bf16; sample
    and token strides free, features contiguous). mask: (B, T) nonzero =
    response token. scores: (B,) per-sample or (B, T) per-token float32
    scores (per-sample vectors of other types are converted); a response is
    positive iff its masked score sum is > 0. Groups: `groups` (B prompt ids,
    host memory) or `rollout_n` (consecutive runs). excluded: optional (B, T)
    bool/uint8 tokens left out of subspace and quantiles (think spans).

    Settings are token_weight_params' (the paper's defaults; **resrl.FAST for
    the fast preset). diagnostics: return one GROUP_DIAGNOSTICS_DTYPE record
    per group (for CUDA inputs copied to the host). distances: True to return
    the residual distances too, or a (B, T) float32 array to write them into.
    out: (B, T) float32 array for the weights. threads: OpenMP threads on the
    host (0 = all). stream: CUDA stream (see the module docstring).

    comm: the processes that share the batch's groups (resrl.distributed:
    a Communicator, e.g. TorchCommunicator, or a torch.distributed process
    group). This process's rows are then its slice of the batch concatenated
    in rank order, and its weights are those of the whole groups; the call is
    collective (every process makes it, with its own rows, possibly none),
    group ids are global and `rollout_n` counts in the concatenated batch.
    Host or CUDA arrays, the same kind on every process. With CUDA arrays
    the communicator gets torch CUDA tensors of the library's device buffers
    when it takes them (TorchCommunicator on an NCCL group), else host
    buffers that the library stages (resrl.distributed.buffer_space says
    which); its device collectives run on `stream`, made torch's current
    stream for the call. Diagnostics: one record per group present here,
    with whole-group values.
    """
    hidden, mask, excluded = exportable(hidden), exportable(mask), exportable(excluded)
    scores = as_vector(scores, "float32", "scores")
    groups = _groups(groups)
    comm = distributed.as_communicator(comm)
    params = _params(
        TokenWeightParams, rank=rank, max_positive_tokens=max_positive_tokens, quantile_low=quantile_low,
        quantile_high=quantile_high, min_weight=min_weight, solver=enum_member(Solver, "solver", solver),
        power_iterations=power_iterations, oversampling=oversampling, seed=seed,
        gemm=enum_member(GemmPrecision, "gemm", gemm),
    )
    batch, tokens = shape_of(hidden, "hidden", "(B, T, H)")[:2]
    if comm is not None and groups is None and rollout_n:
        # Runs of rollout_n in the concatenated batch: global ids from this process's offset.
        first, total = distributed.batch_slice(comm, batch)
        if total % rollout_n:  # every process sees the same total: all raise
            raise InvalidArgument(f"resrl: rollout_n: the processes' batches add up to {total} responses, "
                                  f"not a multiple of rollout_n = {rollout_n}")
        groups = np.arange(first, first + batch, dtype=np.int64) // rollout_n
        rollout_n = None
    weights = empty(hidden, (batch, tokens), "float32") if out is None else out
    if distances is True:
        distance_out = empty(hidden, (batch, tokens), "float32")
    else:
        distance_out = None if distances is False else distances
    records = None
    if diagnostics:
        group_count = _resrl.count_groups(groups, rollout_n or 0, batch)
        records = empty(hidden, (group_count * GROUP_DIAGNOSTICS_DTYPE.itemsize,), "uint8")
    stream = stream_of(hidden, stream)
    with distributed._on_call_stream(hidden, stream) if comm is not None else nullcontext():
        _resrl.token_weights(
            hidden, mask, scores, groups, rollout_n or 0, excluded, params, weights, distance_out, records, threads,
            stream, comm,
        )
    if records is not None:
        records = host_numpy(records).view(GROUP_DIAGNOSTICS_DTYPE)
    return TokenWeights(weights, records, distance_out)


def grpo_advantages(
    scores, mask, groups=None, rollout_n=None, *, normalize_by_std=True, epsilon=1e-6, out=None, threads=0,
    stream=None,
):
    """GRPO outcome advantages (docs/spec.md section 5), (B, T) float32:
    (s - group mean) / (unbiased group std + epsilon) on response tokens (or
    s - mean with normalize_by_std=False), 0 where masked."""
    mask = exportable(mask)
    scores = as_vector(scores, "float32", "scores")
    params = _params(GrpoParams, normalize_by_std=normalize_by_std, epsilon=epsilon)
    out = empty(mask, shape_of(mask, "mask", "(B, T)"), "float32") if out is None else out
    _resrl.grpo_advantages(scores, mask, _groups(groups), rollout_n or 0, params, out, threads, stream_of(mask, stream))
    return out


_WEIGHTINGS = {
    "grpo": AdvantageWeighting.grpo,
    "w_reinforce": AdvantageWeighting.w_reinforce,
    "nsr": AdvantageWeighting.nsr,
    "resrl": AdvantageWeighting.resrl,
}


def reweight_advantages(
    advantages, mask, scores, token_weights=None, *, weighting="resrl", positive_weight=None, out=None, threads=0,
    stream=None,
):
    """Advantages for GRPO, W-REINFORCE, NSR or ResRL (docs/spec.md section
    4), (B, T) float32: A * positive_weight on positive responses, A * w (or
    A) on negative ones, 0 where masked. weighting: "grpo", "w_reinforce",
    "nsr", "resrl" or an AdvantageWeighting; positive_weight overrides the
    preset's. token_weights: (B, T) float32, needed by "resrl"."""
    if isinstance(weighting, AdvantageWeighting):
        params = weighting
    elif weighting in _WEIGHTINGS:
        params = _WEIGHTINGS[weighting]()
    else:
        raise ValueError(f"weighting: {weighting!r} is not one of {', '.join(map(repr, _WEIGHTINGS))}")
    if positive_weight is not None:
        params = _params(AdvantageWeighting, positive_weight=positive_weight,
                         use_token_weights=params.use_token_weights)
    advantages, mask, token_weights = exportable(advantages), exportable(mask), exportable(token_weights)
    scores = as_vector(scores, "float32", "scores")
    out = empty(advantages, shape_of(advantages, "advantages", "(B, T)"), "float32") if out is None else out
    _resrl.reweight_advantages(advantages, mask, scores, token_weights, params, out, threads,
                               stream_of(advantages, stream))
    return out


def policy_loss(
    logp,
    old_logp,
    advantages,
    mask,
    *,
    entropy=None,
    ref_logp=None,
    clip_low=0.2,
    clip_high=0.2,
    clip_ratio_c=3.0,
    aggregation="token-mean",
    entropy_coeff=0.0,
    kl_coeff=0.0,
    kl="k3",
    grad=False,
    dlogp=None,
    dentropy=None,
    threads=0,
    stream=None,
) -> PolicyLoss:
    """Clipped PPO policy loss (verl's vanilla, docs/spec.md section 6) with
    its metrics and, on request, the exact d loss / d logp.

    logp, old_logp, advantages (and entropy, ref_logp when given): (B, T) of
    one type, float32 or float64; mask: (B, T). aggregation: "token-mean",
    "seq-mean-token-sum", "seq-mean-token-mean" or "seq-mean-token-sum-norm";
    kl: "k1", "abs", "k2" or "k3". grad=True allocates the gradients (dlogp,
    and dentropy with an entropy input); dlogp=/dentropy= write them into
    your buffers. For autograd use resrl.torch.policy_loss.
    """
    logp, old_logp, advantages, mask, entropy, ref_logp = map(
        exportable, (logp, old_logp, advantages, mask, entropy, ref_logp))
    params = _params(
        PolicyLossParams, clip_low=clip_low, clip_high=clip_high, clip_ratio_c=clip_ratio_c,
        aggregation=enum_member(LossAggregation, "aggregation", aggregation), entropy_coeff=entropy_coeff,
        kl_coeff=kl_coeff, kl=enum_member(KlEstimator, "kl", "k3" if kl == "low_var_kl" else kl),
    )
    if grad:
        dtype = str(logp.dtype).replace("torch.", "")
        if dlogp is None:
            dlogp = empty(logp, shape_of(logp, "logp", "(B, T)"), dtype)
        if dentropy is None and entropy is not None:
            dentropy = empty(logp, shape_of(logp, "logp", "(B, T)"), dtype)
    metrics = _resrl.policy_loss(logp, old_logp, advantages, mask, entropy, ref_logp, params, dlogp, dentropy,
                                 threads, stream_of(logp, stream))
    return PolicyLoss(metrics.pop("loss"), metrics, dlogp, dentropy)


def length_scaled_rewards(rewards, lengths, *, start=3500, end=4096, floor=0.7, out=None, stream=None):
    """Length-scaled outcome rewards (docs/spec.md section 7), (B,) float32:
    positive rewards fall linearly from full value at `start` response tokens
    to floor x at `end`; other rewards are unchanged."""
    rewards = as_vector(rewards, "float32", "rewards")
    lengths = as_vector(lengths, "int64", "lengths")
    params = _params(LengthPenaltyParams, start=start, end=end, floor=floor)
    out = empty(rewards, shape_of(rewards, "rewards", "(B,)"), "float32") if out is None else out
    _resrl.length_scaled_rewards(rewards, lengths, params, out, stream_of(rewards, stream))
    return out


def mean_pass_at_k(samples, correct, k, *, stream=None):
    """Mean unbiased Pass@k over problems: problem i has samples[i] samples,
    correct[i] of them correct (docs/spec.md section 8)."""
    samples = as_vector(samples, "int64", "samples")
    correct = as_vector(correct, "int64", "correct")
    return _resrl.mean_pass_at_k(samples, correct, k, stream_of(samples, stream))


def positive_likelihood_displacement(logp, old_logp, mask, scores, *, threads=0, stream=None):
    """Lazy Likelihood Displacement monitor (docs/spec.md section 9): how
    the summed log-likelihood of the positive responses moved between the old
    and the current policy. Returns mean_change, fraction_decreased and
    positive_samples."""
    logp, old_logp, mask = exportable(logp), exportable(old_logp), exportable(mask)
    scores = as_vector(scores, "float32", "scores")
    return _resrl.positive_likelihood_displacement(logp, old_logp, mask, scores, threads, stream_of(logp, stream))


def think_span_mask(ids, open_ids, close_ids, *, out=None):
    """(B, T) uint8 exclusion mask of think spans (host arrays): 1 from an
    open id through the matching close id, for token_weights(excluded=...)."""
    ids = as_vector(ids, "int64", "ids")
    out = empty(ids, shape_of(ids, "ids", "(B, T)"), "uint8") if out is None else out
    _resrl.think_span_mask(ids, list(open_ids), list(close_ids), out)
    return out


def summarize(diagnostics):
    """Batch totals of token_weights diagnostics: groups, weighted_groups,
    positive/negative samples, positive_sample_ratio, weighted_tokens, mean,
    min and max weight."""
    records = np.ascontiguousarray(diagnostics, dtype=GROUP_DIAGNOSTICS_DTYPE)
    return _resrl.summarize(records.view(np.uint8))
