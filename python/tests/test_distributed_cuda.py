"""Token weights across processes on CUDA tensors, in one process: threads
standing in for the processes with a communicator written in the test
that takes CUDA tensors (device buffers: sum_device / gather_device on
torch CUDA tensors aliasing the library's buffers) or only host buffers
(the library stages its collectives through the host), each thread on its
own stream; and TorchCommunicator on a one-process NCCL group (NCCL refuses
two ranks on one GPU, so the NCCL collectives across processes run only on
machines with two GPUs or more: not here). Results against the
single-process CUDA call on the whole batch: exact solver within 1e-5,
randomized within 1e-4 at the same seed. gloo processes with CUDA tensors:
test_distributed.py.

Skipped (never passed) without a CUDA device or without a CUDA build of
resrl.
"""

import concurrent.futures

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available in this torch", allow_module_level=True)

import resrl  # noqa: E402
import resrl.torch  # noqa: E402
from conftest import OneProcess  # noqa: E402
from resrl.distributed import TorchCommunicator  # noqa: E402
from test_distributed import (  # noqa: E402
    SCENARIOS, SETTINGS, WORLD_TIMEOUT, ThreadWorld, on_cuda, rollout_layout, world_batch)

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.skipif(not resrl.cuda_enabled, reason="resrl built without CUDA (RESRL_ENABLE_CUDA=OFF)"),
]


class CudaThreadWorld(ThreadWorld):
    """ThreadWorld whose members also take CUDA tensors (device=True): each
    device collective is torch operations on torch's current stream, which
    the stream rule says is the stream of the member's call. A member's
    buffer is copied on its stream, the copy handed over with an event, and
    every member waits for the others' events before reading their copies
    (and records its stream on them, so that their memory is not reused
    before it has read them). Every member adds in rank order: all get the
    same sums. Records what each device method saw."""

    def __init__(self, size, device):
        super().__init__(size)
        self.device = device

    def exchange_on_stream(self, rank, tensor):
        current = torch.cuda.current_stream()
        copy = tensor.clone()
        ready = torch.cuda.Event()
        ready.record(current)
        parts = self.exchange(rank, (copy, ready))
        for other, event in parts:
            current.wait_event(event)
            other.record_stream(current)
        return [other for other, _ in parts]

    def communicator(self, rank):
        member = super().communicator(rank)
        member.seen = []  # (method, dtype, device, torch's current stream) of each device call
        if not self.device:
            return member
        world = self

        def seen(method, tensor):
            member.seen.append((method, tensor.dtype, tensor.device, torch.cuda.current_stream().cuda_stream))

        def sum_device(buffer):
            seen("sum_device", buffer)
            parts = world.exchange_on_stream(rank, buffer)
            total = parts[0].clone()
            for part in parts[1:]:
                total += part
            buffer.copy_(total)

        def gather_device(send, recv, sizes):
            seen("gather_device", recv)
            parts = world.exchange_on_stream(rank, send)
            assert [p.numel() for p in parts] == list(sizes)
            torch.cat(parts, out=recv)

        member.takes_cuda_tensors = True
        member.sum_device, member.gather_device = sum_device, gather_device
        return member


@pytest.mark.parametrize("size", [2, 4])
@pytest.mark.parametrize("space", ["device", "host"])
@pytest.mark.parametrize("scenario,tolerance", [("exact", 1e-5), ("randomized", 1e-4)])
def test_threads_with_cuda_tensors_match_one_process(size, space, scenario, tolerance):
    """Each thread's rows on the device, its call on a stream of its own
    (stream=): device buffers are torch CUDA tensors on the rows' device,
    and torch's current stream in each collective is the call's stream."""
    whole, parts = world_batch(size)
    world = CudaThreadWorld(size, device=space == "device")
    members = [world.communicator(r) for r in range(size)]
    inputs = [on_cuda(part) for part in parts]
    streams = [torch.cuda.Stream() for _ in range(size)]
    torch.cuda.synchronize()  # the inputs' copies (current stream) before the calls (their own streams)
    for member in members:
        assert resrl.distributed.buffer_space(member, True) == space

    def call(r):
        return resrl.token_weights(*inputs[r], comm=members[r], stream=streams[r], distances=True, **SETTINGS,
                                   **SCENARIOS[scenario])

    with concurrent.futures.ThreadPoolExecutor(size) as pool:
        results = [f.result(timeout=WORLD_TIMEOUT) for f in [pool.submit(call, r) for r in range(size)]]
    single = resrl.token_weights(*on_cuda(whole), distances=True, **SETTINGS, **SCENARIOS[scenario])
    for key in ("weights", "distances"):
        got = torch.cat([getattr(r, key) for r in results]).cpu().numpy()
        np.testing.assert_allclose(got, getattr(single, key).cpu().numpy(), rtol=tolerance, atol=tolerance,
                                   err_msg=key)
    for r, result in enumerate(results):
        local_groups = list(dict.fromkeys(parts[r][3].tolist()))
        assert result.diagnostics["group_id"].tolist() == local_groups
    for member, stream in zip(members, streams):
        if space == "host":
            assert member.seen == []
            continue
        methods = {method for method, _, _, _ in member.seen}
        assert methods == {"sum_device", "gather_device"}, member.seen
        for method, dtype, device, current in member.seen:
            assert device == torch.device("cuda", 0)
            assert dtype in ((torch.float32, torch.float64) if method == "sum_device" else (torch.uint8,))
            assert current == stream.cuda_stream, "a device collective off the call's stream"


def test_one_process_communicator_with_cuda_tensors_is_the_plain_call():
    """A communicator of one process (host or device buffers): the plain
    call's result on the device."""
    whole, _ = world_batch(2)
    arrays = on_cuda(whole)
    plain = resrl.token_weights(*arrays, solver="exact", **SETTINGS)
    for comm in (OneProcess(), CudaThreadWorld(1, device=True).communicator(0)):
        one = resrl.token_weights(*arrays, solver="exact", comm=comm, **SETTINGS)
        assert one.weights.is_cuda
        torch.testing.assert_close(one.weights, plain.weights, rtol=0, atol=1e-6)


@pytest.fixture
def nccl_group(tmp_path):
    """The default group as a one-process NCCL group, destroyed after the test."""
    if not torch.distributed.is_nccl_available():
        pytest.skip("this torch has no NCCL")
    assert not torch.distributed.is_initialized()
    torch.distributed.init_process_group("nccl", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                                         world_size=1)
    try:
        yield torch.distributed.group.WORLD
    finally:
        torch.distributed.destroy_process_group()


def test_torch_communicator_on_a_one_process_nccl_group(nccl_group):
    """TorchCommunicator on NCCL: it takes CUDA tensors (device buffers for
    CUDA arrays, host buffers staged through the device for host arrays);
    its device methods on CUDA tensors; and the calls on one process (the
    library's single-process path) equal the plain calls, rollout_n too
    (its offset gather runs on the host methods)."""
    comm = TorchCommunicator(nccl_group)
    assert comm.takes_cuda_tensors
    assert (resrl.distributed.buffer_space(nccl_group, True), resrl.distributed.buffer_space(comm, False)) == (
        "device", "host")

    values = torch.tensor([1.5, -2.0], device="cuda")
    comm.sum_device(values)
    torch.testing.assert_close(values.cpu(), torch.tensor([1.5, -2.0]))
    send = torch.arange(5, dtype=torch.uint8, device="cuda")
    recv = torch.zeros(5, dtype=torch.uint8, device="cuda")
    comm.gather_device(send, recv, (5,))
    torch.testing.assert_close(recv, send)
    host = np.array([3.0, 4.0])
    comm.sum(host)
    np.testing.assert_array_equal(host, [3.0, 4.0])

    whole, _ = world_batch(2)
    arrays = on_cuda(whole)
    side = torch.cuda.Stream()
    torch.cuda.synchronize()
    for solver in ("exact", "randomized"):
        plain = resrl.token_weights(*arrays, solver=solver, **SETTINGS).weights
        for stream in (None, side):
            got = resrl.token_weights(*arrays, solver=solver, comm=nccl_group, stream=stream, **SETTINGS).weights
            torch.testing.assert_close(got, plain, rtol=0, atol=1e-6)
    hidden, mask, scores = on_cuda(rollout_layout(2)[0])[:3]  # 16 responses: 4 runs of 4
    plain = resrl.token_weights(hidden, mask, scores, rollout_n=4, solver="exact", **SETTINGS).weights
    got = resrl.torch.token_weights(hidden, mask, scores, rollout_n=4, solver="exact", rank=SETTINGS["rank"],
                                    comm=nccl_group)
    torch.testing.assert_close(got, plain, rtol=0, atol=1e-6)
