"""torch tensors in, torch tensors out: every hidden type including bf16,
every mask type, strided views and out= without copies; resrl.torch's
autograd policy loss against torch autograd of the transcribed loss."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import resrl  # noqa: E402
import resrl.torch  # noqa: E402
import transcription  # noqa: E402
from conftest import make_batch  # noqa: E402

HIDDEN_TYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
MASK_TYPES = [torch.bool, torch.uint8, torch.int32, torch.int64, torch.float32, torch.float64]


def tensors(batch, hidden_type=torch.float32, mask_type=torch.bool):
    return (torch.tensor(batch.hidden).to(hidden_type), torch.tensor(batch.mask).to(mask_type),
            torch.tensor(batch.scores), torch.tensor(batch.groups))


def reference_weights(hidden, mask, scores, groups, **settings):
    weights, _ = transcription.token_weights(hidden.double().numpy(), mask.numpy(), scores.numpy(), groups.numpy(),
                                             **settings)
    return torch.tensor(weights, dtype=torch.float32)


@pytest.mark.parametrize("hidden_type", HIDDEN_TYPES)
def test_every_hidden_type_including_bf16(batch, hidden_type):
    hidden, mask, scores, groups = tensors(batch, hidden_type)
    assert resrl._resrl.array_info(hidden)["data"] == hidden.data_ptr()  # bf16 arrives as is, not converted
    result = resrl.token_weights(hidden, mask, scores, groups, rank=4, solver="exact")
    assert isinstance(result.weights, torch.Tensor) and result.weights.dtype == torch.float32
    assert result.diagnostics.dtype == resrl.GROUP_DIAGNOSTICS_DTYPE
    torch.testing.assert_close(result.weights, reference_weights(hidden, mask, scores, groups, rank=4), atol=2e-4,
                               rtol=0)


@pytest.mark.parametrize("mask_type", MASK_TYPES)
def test_every_mask_type(batch, mask_type):
    hidden, mask, scores, groups = tensors(batch, mask_type=mask_type)
    weights = resrl.torch.token_weights(hidden, mask, scores, groups, rank=4, solver="exact")
    torch.testing.assert_close(weights, reference_weights(hidden, mask, scores, groups, rank=4), atol=2e-4, rtol=0)


def test_strided_views_out_and_grad_requiring_hidden_without_copies():
    b = make_batch(seed=4)
    B, T, H = b.hidden.shape
    padded = torch.zeros(B, T + 2, H + 8, dtype=torch.bfloat16)
    padded[:, :T, :H] = torch.tensor(b.hidden)
    hidden = padded[:, :T, :H].requires_grad_(False)
    hidden_leaf = hidden.detach().clone().requires_grad_(True)  # as a model's output would
    mask = torch.tensor(b.mask, dtype=torch.uint8).t().contiguous().t()  # column-major
    scores, groups = torch.tensor(b.scores), torch.tensor(b.groups)
    assert resrl._resrl.array_info(hidden)["strides"] == [(T + 2) * (H + 8), H + 8, 1]
    assert resrl._resrl.array_info(mask)["data"] == mask.data_ptr()
    out = torch.empty(B, T)
    result = resrl.token_weights(hidden, mask, scores, groups, rank=4, solver="exact", out=out)
    assert result.weights is out
    torch.testing.assert_close(out, reference_weights(hidden, mask, scores, groups, rank=4), atol=2e-4, rtol=0)
    again = resrl.torch.token_weights(hidden_leaf, mask, scores, groups, rank=4, solver="exact")
    torch.testing.assert_close(again, out, atol=0, rtol=0)


def test_losses_return_torch_tensors(batch):
    _, mask, scores, groups = tensors(batch)
    advantages = resrl.grpo_advantages(scores, mask, groups)
    assert isinstance(advantages, torch.Tensor)
    want = transcription.grpo_advantages(batch.scores, batch.mask, batch.groups)
    torch.testing.assert_close(advantages, torch.tensor(want, dtype=torch.float32), rtol=1e-6, atol=1e-6)
    weights = torch.rand(mask.shape) * 0.9 + 0.1
    reweighted = resrl.reweight_advantages(advantages, mask, scores, weights)
    want = transcription.reweight_advantages(want, batch.mask, batch.scores, weights.numpy(), 0.1, True)
    torch.testing.assert_close(reweighted, torch.tensor(want, dtype=torch.float32), rtol=1e-6, atol=1e-6)
    rewards = resrl.length_scaled_rewards(torch.ones(3), torch.tensor([3500, 3798, 4096]))
    torch.testing.assert_close(rewards, torch.tensor([1.0, 0.85, 0.7]), rtol=1e-6, atol=1e-6)


def loss_tensors(seed, real):
    rng = np.random.default_rng(seed)
    shape = (5, 9)
    old = torch.tensor(rng.normal(-1, 0.5, shape), dtype=real)
    logp = (old + torch.tensor(rng.normal(0, 0.3, shape), dtype=real)).requires_grad_(True)
    advantages = torch.tensor(rng.standard_normal(shape), dtype=real)
    mask = torch.tensor(np.arange(shape[1])[None, :] < rng.integers(1, shape[1] + 1, shape[0])[:, None])
    entropy = torch.tensor(rng.uniform(0, 2, shape), dtype=real, requires_grad=True)
    ref = old + torch.tensor(rng.normal(0, 0.4, shape), dtype=real)
    return logp, old, advantages, mask, entropy, ref


@pytest.mark.parametrize("real", [torch.float32, torch.float64])
@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean",
                                         "seq-mean-token-sum-norm"])
def test_autograd_policy_loss_matches_autograd_of_the_transcription(real, aggregation):
    logp, old, advantages, mask, entropy, ref = loss_tensors(7, real)
    settings = dict(aggregation=aggregation, entropy_coeff=0.01, kl_coeff=0.1, kl="k3", clip_high=0.28)
    loss, metrics = resrl.torch.policy_loss(logp, old, advantages, mask, entropy=entropy, ref_logp=ref, **settings)
    assert loss.dtype == real and loss.dim() == 0
    (2.5 * loss).backward()  # the upstream gradient is chained
    got_dlogp, got_dentropy = logp.grad.clone(), entropy.grad.clone()

    logp64 = logp.detach().double().requires_grad_(True)
    entropy64 = entropy.detach().double().requires_grad_(True)
    want, want_metrics = transcription.policy_loss(torch, logp64, old.double(), advantages.double(), mask,
                                                   entropy=entropy64, ref_logp=ref.double(), **settings)
    (2.5 * want).backward()
    tolerance = dict(rtol=1e-5, atol=1e-7) if real == torch.float32 else dict(rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(loss.double(), want.detach(), **tolerance)
    torch.testing.assert_close(got_dlogp.double(), logp64.grad, **tolerance)
    torch.testing.assert_close(got_dentropy.double(), entropy64.grad, **tolerance)
    for name, value in want_metrics.items():
        torch.testing.assert_close(metrics[name], value.detach(), **tolerance, msg=name)


def test_backward_through_a_model():
    torch.manual_seed(0)
    logits = torch.nn.Linear(6, 11, dtype=torch.float64)
    features = torch.randn(4, 7, 6, dtype=torch.float64)
    tokens = torch.randint(0, 11, (4, 7))
    mask = torch.rand(4, 7) > 0.2
    advantages = torch.randn(4, 7, dtype=torch.float64)

    def logp_of():
        return torch.log_softmax(logits(features), -1).gather(-1, tokens[..., None])[..., 0]

    old = logp_of().detach() + 0.1 * torch.randn(4, 7, dtype=torch.float64)
    loss, _ = resrl.torch.policy_loss(logp_of(), old, advantages, mask)
    loss.backward()
    got = logits.weight.grad.clone()
    logits.weight.grad = None
    want, _ = transcription.policy_loss(torch, logp_of(), old, advantages, mask)
    want.backward()
    torch.testing.assert_close(got, logits.weight.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.skipif(not resrl.torch.uses_custom_ops,
                    reason=f"torch {torch.__version__} has no torch.library.custom_op (2.4+): no ops to compile")
def test_custom_ops_trace_under_torch_compile(batch):
    logp, old, advantages, mask, _, _ = loss_tensors(8, torch.float32)

    def step(logp):
        loss, metrics = resrl.torch.policy_loss(logp, old, advantages, mask)
        return loss, metrics["clipfrac"]

    eager_loss, eager_clipfrac = step(logp)
    eager_loss.backward()
    eager_grad = logp.grad.clone()
    logp.grad = None
    compiled_loss, compiled_clipfrac = torch.compile(step, fullgraph=True)(logp)
    compiled_loss.backward()
    torch.testing.assert_close(compiled_loss, eager_loss)
    torch.testing.assert_close(compiled_clipfrac, eager_clipfrac)
    torch.testing.assert_close(logp.grad, eager_grad)

    hidden, mask, scores, groups = tensors(batch)
    compiled_weights = torch.compile(
        lambda h: resrl.torch.token_weights(h, mask, scores, groups, rank=4, solver="exact"), fullgraph=True)
    torch.testing.assert_close(compiled_weights(hidden),
                               resrl.torch.token_weights(hidden, mask, scores, groups, rank=4, solver="exact"))
