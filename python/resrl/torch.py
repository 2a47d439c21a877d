"""The PyTorch layer of resrl.

policy_loss: the clipped PPO loss as an autograd operation whose backward is
the library's exact d loss / d logp (and d loss / d entropy), so that
`loss.backward()` works in any trainer. token_weights: ResRL weights of torch
tensors as a torch tensor on the same device (constants: no gradient).
capture_hidden: records a model's penultimate-layer hidden states (the input
of its last decoder block) during a forward pass; response_states aligns
them with the response tokens as the reference does.

With torch 2.4 or later both are registered as custom operators
(torch.ops.resrl.policy_loss, torch.ops.resrl.token_weights) with fake
implementations, so torch.compile traces through them; on older torch they
are a torch.autograd.Function and a plain function with the same results.
"""

from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch

import resrl

__all__ = ["HiddenCapture", "capture_hidden", "policy_loss", "response_states", "token_weights", "uses_custom_ops"]

#: Order of the float64 vector a policy_loss call produces: the loss, then the metrics.
_VALUES = ("loss", "pg_loss", "clipfrac", "ppo_kl", "clipfrac_lower", "entropy", "kl_loss", "tokens")

#: Whether this torch has torch.library.custom_op (2.4+) and the ops are registered.
uses_custom_ops = hasattr(torch.library, "custom_op")


def _policy_loss_values(logp, old_logp, advantages, mask, entropy, ref_logp, settings, want_grad):
    """(loss in logp's dtype, float64 vector of _VALUES, dlogp, dentropy)."""
    result = resrl.policy_loss(logp, old_logp, advantages, mask, entropy=entropy, ref_logp=ref_logp, grad=want_grad,
                               **settings)
    values = [result.loss] + [float(result.metrics[name]) for name in _VALUES[1:]]
    values = torch.tensor(values, dtype=torch.float64, device=logp.device)
    return values[0].to(logp.dtype, copy=True), values, result.dlogp, result.dentropy


def _chain(grad_loss, dloss):
    """Gradient of the upstream scalar through the loss: grad_loss * d loss / d x."""
    return None if dloss is None else grad_loss.to(dloss.dtype) * dloss


class _PolicyLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logp, old_logp, advantages, mask, entropy, ref_logp, settings):
        want_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[4]
        loss, values, dlogp, dentropy = _policy_loss_values(logp, old_logp, advantages, mask, entropy, ref_logp,
                                                            settings, want_grad)
        ctx.save_for_backward(dlogp, dentropy)
        ctx.mark_non_differentiable(values)
        return loss, values

    @staticmethod
    def backward(ctx, grad_loss, _grad_values):
        dlogp, dentropy = ctx.saved_tensors
        return _chain(grad_loss, dlogp), None, None, None, _chain(grad_loss, dentropy), None, None


def _settings(clip_low, clip_high, clip_ratio_c, aggregation, entropy_coeff, kl_coeff, kl):
    return {"clip_low": clip_low, "clip_high": clip_high, "clip_ratio_c": clip_ratio_c, "aggregation": aggregation,
            "entropy_coeff": entropy_coeff, "kl_coeff": kl_coeff, "kl": kl}


if uses_custom_ops:

    @torch.library.custom_op("resrl::policy_loss", mutates_args=())
    def _policy_loss_op(
        logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
        entropy: Optional[torch.Tensor], ref_logp: Optional[torch.Tensor], clip_low: float, clip_high: float,
        clip_ratio_c: float, aggregation: str, entropy_coeff: float, kl_coeff: float, kl: str, want_grad: bool,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        settings = _settings(clip_low, clip_high, clip_ratio_c, aggregation, entropy_coeff, kl_coeff, kl)
        loss, values, dlogp, dentropy = _policy_loss_values(logp, old_logp, advantages, mask, entropy, ref_logp,
                                                            settings, want_grad)
        # Outputs of a custom operator may not alias each other: one empty tensor each.
        return (loss, values, logp.new_empty(0) if dlogp is None else dlogp,
                logp.new_empty(0) if dentropy is None else dentropy)

    @_policy_loss_op.register_fake
    def _(logp, old_logp, advantages, mask, entropy, ref_logp, *settings_and_want_grad):
        want_grad = settings_and_want_grad[-1]
        gradient = (lambda x: torch.empty_like(x)) if want_grad else (lambda x: logp.new_empty(0))
        dentropy = logp.new_empty(0) if entropy is None else gradient(entropy)
        return logp.new_empty(()), logp.new_empty(len(_VALUES), dtype=torch.float64), gradient(logp), dentropy

    def _setup_policy_loss(ctx, inputs, output):
        ctx.save_for_backward(output[2], output[3])
        ctx.has_entropy = inputs[4] is not None

    def _backward_policy_loss(ctx, grad_loss, _grad_values, _grad_dlogp, _grad_dentropy):
        dlogp, dentropy = ctx.saved_tensors
        grad_entropy = _chain(grad_loss, dentropy) if ctx.has_entropy else None
        return (_chain(grad_loss, dlogp), None, None, None, grad_entropy) + (None,) * 9

    _policy_loss_op.register_autograd(_backward_policy_loss, setup_context=_setup_policy_loss)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    entropy: Optional[torch.Tensor] = None,
    ref_logp: Optional[torch.Tensor] = None,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    clip_ratio_c: float = 3.0,
    aggregation: str = "token-mean",
    entropy_coeff: float = 0.0,
    kl_coeff: float = 0.0,
    kl: str = "k3",
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Clipped PPO loss (resrl.policy_loss's settings) as a 0-d tensor of
    logp's dtype whose backward gives logp (and entropy) the library's exact
    gradient, and the metrics as 0-d float64 tensors (pg_loss, clipfrac,
    ppo_kl, clipfrac_lower, entropy, kl_loss, tokens). advantages, old_logp
    and ref_logp are constants."""
    settings = _settings(clip_low, clip_high, clip_ratio_c, aggregation, entropy_coeff, kl_coeff, kl)
    if uses_custom_ops:
        want_grad = logp.requires_grad or (entropy is not None and entropy.requires_grad)
        loss, values, _, _ = _policy_loss_op(logp, old_logp, advantages, mask, entropy, ref_logp, *settings.values(),
                                             want_grad)
    else:
        loss, values = _PolicyLossFunction.apply(logp, old_logp, advantages, mask, entropy, ref_logp, settings)
    return loss, {name: values[i] for i, name in enumerate(_VALUES) if i > 0}


def _token_weights_eager(hidden, mask, scores, groups, rollout_n, excluded, settings):
    return resrl.token_weights(hidden, mask, scores, groups, rollout_n, excluded, diagnostics=False,
                               **settings).weights


if uses_custom_ops:

    @torch.library.custom_op("resrl::token_weights", mutates_args=())
    def _token_weights_op(
        hidden: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor, groups: Optional[torch.Tensor],
        rollout_n: int, excluded: Optional[torch.Tensor], rank: int, max_positive_tokens: int, quantile_low: float,
        quantile_high: float, min_weight: float, solver: str, power_iterations: int, oversampling: int, seed: int,
        gemm: str,
    ) -> torch.Tensor:
        settings = dict(rank=rank, max_positive_tokens=max_positive_tokens, quantile_low=quantile_low,
                        quantile_high=quantile_high, min_weight=min_weight, solver=solver,
                        power_iterations=power_iterations, oversampling=oversampling, seed=seed, gemm=gemm)
        return _token_weights_eager(hidden, mask, scores, groups, rollout_n, excluded, settings)

    @_token_weights_op.register_fake
    def _(hidden, *_args):
        return hidden.new_empty(hidden.shape[:2], dtype=torch.float32)


def token_weights(
    hidden: torch.Tensor,
    mask: torch.Tensor,
    scores: torch.Tensor,
    groups: Optional[torch.Tensor] = None,
    rollout_n: Optional[int] = None,
    excluded: Optional[torch.Tensor] = None,
    *,
    rank: int = 64,
    max_positive_tokens: int = 4096,
    quantile_low: float = 0.2,
    quantile_high: float = 0.8,
    min_weight: float = 0.1,
    solver: str = "randomized",
    power_iterations: int = 4,
    oversampling: int = 0,
    seed: int = 0,
    gemm: str = "full",
    comm: Any = None,
) -> torch.Tensor:
    """ResRL token weights (resrl.token_weights's arguments) as a (B, T)
    float32 tensor on hidden's device. Weights are constants of the loss: no
    gradient flows to hidden. groups: host int64 tensor of prompt ids.
    comm: the processes sharing the batch's groups (a torch.distributed
    process group or a resrl.distributed.Communicator; CPU or CUDA tensors,
    on torch's current stream as without comm): a collective call, eager on
    every torch (a collective is no operator that torch.compile could
    trace)."""
    settings = dict(rank=rank, max_positive_tokens=max_positive_tokens, quantile_low=quantile_low,
                    quantile_high=quantile_high, min_weight=min_weight, solver=solver,
                    power_iterations=power_iterations, oversampling=oversampling, seed=seed, gemm=gemm)
    if comm is not None:
        return _token_weights_eager(hidden, mask, scores, groups, rollout_n, excluded, dict(settings, comm=comm))
    if uses_custom_ops:
        if groups is not None and not isinstance(groups, torch.Tensor):
            groups = torch.as_tensor(groups, dtype=torch.int64)
        return _token_weights_op(hidden.detach(), mask, scores, groups, rollout_n or 0, excluded, **settings)
    return _token_weights_eager(hidden, mask, scores, groups, rollout_n, excluded, settings)


#: Where Hugging Face-style models keep their decoder blocks: Llama, Qwen,
#: Mistral, ... (model.model.layers); GPT-2 style (model.transformer.h); a
#: bare decoder (model.layers).
_BLOCK_LISTS = (("model", "layers"), ("transformer", "h"), ("layers",))


def _last_block(model: torch.nn.Module) -> torch.nn.Module:
    for path in _BLOCK_LISTS:
        blocks: Any = model
        for name in path:
            blocks = getattr(blocks, name, None)
        if isinstance(blocks, (torch.nn.ModuleList, torch.nn.Sequential)) and len(blocks) > 0:
            return blocks[-1]
    names = ", ".join(".".join(path) for path in _BLOCK_LISTS)
    raise ValueError(f"capture_hidden: {type(model).__name__} has none of {names}: pass layer= (the last decoder "
                     "block, whose input is recorded)")


class HiddenCapture:
    """What capture_hidden recorded: one detached (B, L, H) tensor per
    forward call of the model (the input of the layer), in call order."""

    def __init__(self) -> None:
        self.states: List[torch.Tensor] = []
        self._armed = False  # a forward of the model has started and the layer has not run in it yet

    @property
    def hidden(self) -> torch.Tensor:
        """The latest forward's penultimate-layer states, (B, L, H)."""
        if not self.states:
            raise RuntimeError("capture_hidden: nothing recorded: the model's forward did not reach the layer")
        return self.states[-1]

    def clear(self) -> None:
        self.states.clear()

    def _arm(self, _module: torch.nn.Module, _args: Tuple[Any, ...]) -> None:
        self._armed = True

    def _record(self, _module: torch.nn.Module, args: Tuple[Any, ...], kwargs: Optional[Dict[str, Any]] = None) -> None:
        if not self._armed:
            return  # a recomputation (gradient checkpointing's backward) or a call outside the model's forward
        state = args[0] if args else (kwargs or {}).get("hidden_states")
        if not isinstance(state, torch.Tensor):
            raise TypeError("capture_hidden: the layer's first argument (or hidden_states=) is not a tensor")
        self.states.append(state.detach())
        self._armed = False


@contextmanager
def capture_hidden(model: torch.nn.Module, layer: Optional[torch.nn.Module] = None) -> Iterator[HiddenCapture]:
    """Records the penultimate-layer hidden states of `model`'s forward
    passes inside the `with` block: the input of its last decoder block (what
    Hugging Face returns as hidden_states[-2] with output_hidden_states=True,
    without keeping every layer's states), detached.

    layer: the block whose input is recorded; by default the last of
    model.model.layers (Llama, Qwen, Mistral, ...), model.transformer.h
    (GPT-2 style) or model.layers. The block must take the hidden states as
    its first positional argument (or, on torch 2.0+, as hidden_states=).

    Once per forward: a forward pre-hook on `model` arms the capture and the
    first call of `layer` after it records and disarms, so the layer's calls
    that gradient checkpointing repeats during backward (outside the model's
    forward) record nothing. Every forward of the model in the block appends
    one tensor to `.states`; `.hidden` is the latest.

        with resrl.torch.capture_hidden(model) as capture:
            logits = model(input_ids).logits
        hidden = resrl.torch.response_states(capture.hidden, response_length)
    """
    if layer is None:
        layer = _last_block(model)
    capture = HiddenCapture()
    arm = model.register_forward_pre_hook(capture._arm)
    try:
        record = layer.register_forward_pre_hook(capture._record, with_kwargs=True)  # type: ignore[call-arg]
    except TypeError:  # torch before 2.0: positional arguments only
        record = layer.register_forward_pre_hook(capture._record)
    try:
        yield capture
    finally:
        record.remove()
        arm.remove()


def response_states(hidden: torch.Tensor, response_length: int) -> torch.Tensor:
    """The states that predict the response tokens, (B, R, H), from the
    states of whole sequences (B, L, H) laid out as verl (and TRL) lay them
    out: the prompt (left-padded) then the response (right-padded) of
    response_length R tokens at the end. Response token j sits at position
    L - R + j and is predicted by the state at L - R - 1 + j, so this is
    hidden[:, L - R - 1 : L - 1] (the reference's full_last_hidden[:,
    -R - 1 : -1]); the result is a view, row j aligned with response token j
    (and with the response mask, log-probs and advantages). For unpadded
    (packed) forwards, pad the states back to (B, L, H) first (verl's
    pad_input), as for the log-probs."""
    length = hidden.shape[1]
    if hidden.dim() != 3 or not 0 < response_length < length:
        raise ValueError(f"response_states: expected (B, L, H) states with 0 < response_length < L, got shape "
                         f"{tuple(hidden.shape)} and response_length {response_length}")
    return hidden[:, length - response_length - 1 : length - 1]
