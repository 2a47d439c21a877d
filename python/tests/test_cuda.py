"""CUDA tensors: the same results as on the CPU, on the caller's stream, in
order with the work queued before the call. Skipped (never passed) without
a CUDA device or without a CUDA build of resrl."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import resrl  # noqa: E402
import resrl.torch  # noqa: E402
import transcription  # noqa: E402
from conftest import make_batch  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.skipif(not resrl.cuda_enabled, reason="resrl built without CUDA (RESRL_ENABLE_CUDA=OFF)"),
]

# Long enough that a call not ordered after it reads unfilled memory.
SLEEP_CYCLES = 200_000_000


def cuda_batch(hidden_type=torch.bfloat16):
    b = make_batch(seed=11)
    hidden = torch.tensor(b.hidden).to(hidden_type)
    reference, _ = transcription.token_weights(hidden.double().numpy(), b.mask, b.scores, b.groups, rank=4)
    return b, hidden, torch.tensor(reference, dtype=torch.float32)


@pytest.mark.parametrize("hidden_type", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("solver", ["exact", "randomized"])
def test_token_weights_on_the_device(hidden_type, solver):
    b, hidden, reference = cuda_batch(hidden_type)
    result = resrl.token_weights(hidden.cuda(), torch.tensor(b.mask).cuda(), torch.tensor(b.scores).cuda(),
                                 b.groups, rank=4, solver=solver)
    assert result.weights.is_cuda and result.weights.device == torch.device("cuda", 0)
    torch.testing.assert_close(result.weights.cpu(), reference, atol=2e-3, rtol=0)
    assert list(result.diagnostics["group_id"]) == list(dict.fromkeys(b.groups))


def filled_later(source, stream):
    """A device copy of `source` that `stream` fills only after a long sleep."""
    target = torch.full_like(source, float("nan"), device="cuda")
    stream.wait_stream(torch.cuda.current_stream())  # the NaN fill first
    with torch.cuda.stream(stream):
        torch.cuda._sleep(SLEEP_CYCLES)
        target.copy_(source.cuda(non_blocking=False))
    return target


def test_calls_are_ordered_on_the_current_stream():
    b, hidden, reference = cuda_batch()
    mask, scores = torch.tensor(b.mask).cuda(), torch.tensor(b.scores).cuda()
    current = torch.cuda.current_stream()
    hidden_cuda = filled_later(hidden, current)
    weights = resrl.torch.token_weights(hidden_cuda, mask, scores, b.groups, rank=4)
    torch.testing.assert_close(weights.cpu(), reference, atol=2e-3, rtol=0)


def test_calls_run_on_an_explicit_or_entered_stream():
    b, hidden, reference = cuda_batch()
    mask, scores = torch.tensor(b.mask).cuda(), torch.tensor(b.scores).cuda()
    side = torch.cuda.Stream()
    explicit = resrl.token_weights(filled_later(hidden, side), mask, scores, b.groups, rank=4, stream=side)
    with torch.cuda.stream(side):  # the current stream is the default
        entered = resrl.token_weights(filled_later(hidden, side), mask, scores, b.groups, rank=4)
    for result in (explicit, entered):
        torch.testing.assert_close(result.weights.cpu(), reference, atol=2e-3, rtol=0)


def test_losses_on_the_device_match_the_host():
    rng = np.random.default_rng(12)
    shape = (6, 16)
    old = torch.tensor(rng.normal(-1, 0.5, shape), dtype=torch.float32)
    logp = old + torch.tensor(rng.normal(0, 0.3, shape), dtype=torch.float32)
    advantages = torch.tensor(rng.standard_normal(shape), dtype=torch.float32)
    mask = torch.tensor(rng.random(shape) > 0.2)
    scores = torch.tensor([1, 0, 1, 0, 0, 1], dtype=torch.float32)
    on_host = [resrl.grpo_advantages(scores, mask, rollout_n=3), resrl.reweight_advantages(advantages, mask, scores,
               weighting="w_reinforce"), resrl.length_scaled_rewards(scores, torch.tensor([10, 3600, 5000] * 2))]
    on_device = [resrl.grpo_advantages(scores.cuda(), mask.cuda(), rollout_n=3),
                 resrl.reweight_advantages(advantages.cuda(), mask.cuda(), scores.cuda(), weighting="w_reinforce"),
                 resrl.length_scaled_rewards(scores.cuda(), torch.tensor([10, 3600, 5000] * 2).cuda())]
    for host, device in zip(on_host, on_device):
        assert device.is_cuda
        torch.testing.assert_close(device.cpu(), host, rtol=1e-6, atol=1e-6)

    leaf_host = logp.clone().requires_grad_(True)
    leaf_device = logp.cuda().requires_grad_(True)
    loss_host, metrics_host = resrl.torch.policy_loss(leaf_host, old, advantages, mask)
    loss_device, metrics_device = resrl.torch.policy_loss(leaf_device, old.cuda(), advantages.cuda(), mask.cuda())
    loss_host.backward()
    loss_device.backward()
    torch.testing.assert_close(loss_device.cpu(), loss_host, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(leaf_device.grad.cpu(), leaf_host.grad, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(metrics_device["clipfrac"].cpu(), metrics_host["clipfrac"])
    samples, correct = torch.tensor([8, 8, 4]), torch.tensor([0, 3, 4])
    assert resrl.mean_pass_at_k(samples.cuda(), correct.cuda(), 2) == pytest.approx(
        resrl.mean_pass_at_k(samples, correct, 2), rel=1e-12)


def test_device_errors_name_the_argument():
    b, hidden, _ = cuda_batch()
    with pytest.raises(resrl.InvalidArgument, match="mask: in host memory but hidden is in the memory of CUDA device 0"):
        resrl.token_weights(hidden.cuda(), torch.tensor(b.mask), torch.tensor(b.scores).cuda(), b.groups)
    with pytest.raises(resrl.InvalidArgument, match="groups: group ids must be in host memory"):
        resrl.token_weights(hidden.cuda(), torch.tensor(b.mask).cuda(), torch.tensor(b.scores).cuda(),
                            torch.tensor(b.groups).cuda(), diagnostics=False)
    with pytest.raises(TypeError, match="hidden: hidden states of type float64 are not supported by the CUDA"):
        resrl.token_weights(hidden.double().cuda(), torch.tensor(b.mask).cuda(), torch.tensor(b.scores).cuda(),
                            b.groups)
