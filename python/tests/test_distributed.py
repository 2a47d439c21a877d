"""Token weights across processes (resrl.distributed): 2 and 4 gloo
processes, each holding an uneven slice of one batch (processes that hold
only positives, only negatives or nothing of a group, and one that holds no
rows at all), against the single-process call on the whole batch: exact
solver within 1e-5, randomized within 1e-4 at the same seed. Also
TorchCommunicator's sum and gather against hand-computed values, the verl
drop-in with a process group, a batch whose hidden size differs on one
process (every process raises, none hangs), and threads of one process
standing in for processes (the protocol without torch). The device methods
of TorchCommunicator (sum_device, gather_device) run here on CPU tensors,
which gloo takes; which buffers a communicator gets (host or device) is
checked without a GPU. With a CUDA device and a CUDA build of resrl the
worlds also run the calls on CUDA tensors (gloo: the library stages its
buffers through the host); test_distributed_cuda.py has the device buffers.

Each world is started once (spawned processes, a file:// rendezvous, a
gloo timeout) and runs every scenario; the parent kills it after
WORLD_TIMEOUT seconds, so that a hang fails the tests instead of blocking.
"""

import datetime
import multiprocessing
import os
import pickle
import traceback

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available in this torch", allow_module_level=True)

import resrl  # noqa: E402
import resrl.torch  # noqa: E402
from resrl.distributed import TorchCommunicator, batch_slice  # noqa: E402
from conftest import OneProcess  # noqa: E402
from resrl.integrations import verl  # noqa: E402

WORLD_TIMEOUT = 50  # seconds for a whole world (spawn, import, every scenario)
CUDA_WORLD_TIMEOUT = 60  # more for the CUDA scenarios (a CUDA context and handles per process)
COLLECTIVE_TIMEOUT = 15  # gloo's timeout of one collective
TOKENS, FEATURES, RANK = 12, 16, 4
SETTINGS = {"rank": RANK, "threads": 1}

# Rows of the batch per process: (group id, positive?). Group 7 is split so
# that some process holds only its positives, another only its negatives and
# another none of it; group 2 has no positive response (skipped), group 5 no
# negative one; group ids are not sorted.
LAYOUTS = {
    2: [
        [(7, True), (7, True), (9, False), (7, True), (2, False)],
        [(9, True), (7, False), (5, True), (9, False), (7, False), (9, True), (5, True), (2, False), (7, False),
         (9, False)],
    ],
    4: [
        [(7, True), (9, False), (5, True), (9, True)],
        [(7, False), (7, False), (2, False), (9, False), (7, False)],
        [],  # no rows at all
        [(9, True), (7, True), (2, False), (5, True), (7, True), (9, False), (9, False)],
    ],
}


def make_rows(layout, seed=3):
    """Hidden (B, T, H) float32, mask (B, T) bool, per-sample scores (B,)
    and group ids (B,) of `layout`'s rows, the same numbers for the same
    (group, sign, occurrence) on every process: positives near a rank-3
    subspace of their group, negatives partly off it."""
    rng = np.random.default_rng(seed)
    bases = {g: np.linalg.qr(rng.standard_normal((FEATURES, 3)))[0] for g in (2, 5, 7, 9)}
    hidden = np.zeros((len(layout), TOKENS, FEATURES), dtype=np.float32)
    mask = np.zeros((len(layout), TOKENS), dtype=bool)
    for b, (group, positive) in enumerate(layout):
        row = np.random.default_rng([seed, group, b])
        states = row.standard_normal((TOKENS, 3)) @ bases[group].T * 3 + 0.05 * row.standard_normal((TOKENS, FEATURES))
        if not positive:
            off = row.random(TOKENS) < 0.5
            states[off] += row.standard_normal((off.sum(), FEATURES)) * row.uniform(0.2, 2.0, (off.sum(), 1))
        hidden[b] = states
        mask[b, : row.integers(TOKENS // 2, TOKENS + 1)] = True
    scores = np.array([1.0 if positive else 0.0 for _, positive in layout], dtype=np.float32)
    groups = np.array([group for group, _ in layout], dtype=np.int64)
    return hidden, mask, scores, groups


def world_batch(size):
    """Every process's rows (rows made from the concatenated layout, then
    cut, so that the single-process batch is exactly their concatenation)."""
    layouts = LAYOUTS[size]
    whole = make_rows([row for layout in layouts for row in layout])
    parts, start = [], 0
    for layout in layouts:
        parts.append(tuple(a[start : start + len(layout)] for a in whole))
        start += len(layout)
    return whole, parts


def rollout_layout(size):
    """Consecutive runs of 4 responses per prompt, cut unevenly over the
    processes (a run may straddle two processes)."""
    cuts = {2: [5, 11], 4: [3, 0, 6, 7]}[size]
    layout = [(g, i % 2 == 0) for g in (7, 2, 9, 5) for i in range(4)][: sum(cuts)]
    whole = make_rows(layout, seed=5)
    whole[2][4:8] = 0.0  # the second prompt has no correct response
    parts, start = [], 0
    for count in cuts:
        parts.append(tuple(a[start : start + count] for a in whole))
        start += count
    return whole, parts


SCENARIOS = {
    "exact": dict(solver="exact"),
    "randomized": dict(solver="randomized", seed=11, power_iterations=2),
}


def cuda_runs():
    """Whether the CUDA scenarios run: a CUDA device and a CUDA build."""
    return torch.cuda.is_available() and resrl.cuda_enabled


def on_cuda(arrays):
    return tuple(torch.from_numpy(a).cuda() for a in arrays[:3]) + tuple(arrays[3:])


def _worker(rank, size, rendezvous, out_dir, cuda=False):
    """One process of a world: every scenario, results pickled to out_dir."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    results = {}

    def attempt(name, f):
        try:
            results[name] = f()
        except Exception as e:  # reported to the parent, which asserts on it
            results[name] = {"error": type(e).__name__, "message": str(e), "trace": traceback.format_exc()}

    try:
        torch.distributed.init_process_group(
            "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=size,
            timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT))
        comm = TorchCommunicator()
        attempt("collectives", lambda: _collectives(comm))
        attempt("device_collectives", lambda: _device_collectives(comm))
        _, parts = world_batch(size)
        hidden, mask, scores, groups = parts[rank]
        for name, settings in SCENARIOS.items():
            attempt(name, lambda: _weights(resrl.token_weights(hidden, mask, scores, groups, comm=comm, distances=True,
                                                               **SETTINGS, **settings)))
        _, rollout_parts = rollout_layout(size)
        h, m, s, _ = rollout_parts[rank]
        attempt("rollout_n", lambda: _weights(resrl.token_weights(h, m, s, rollout_n=4, comm=comm, solver="exact",
                                                                  **SETTINGS)))
        attempt("torch", lambda: resrl.torch.token_weights(
            torch.from_numpy(hidden).to(torch.bfloat16), torch.from_numpy(mask), torch.from_numpy(scores),
            torch.from_numpy(groups), comm=torch.distributed.group.WORLD, rank=RANK, solver="exact").numpy())
        attempt("verl", lambda: _verl(hidden, mask, scores, groups, torch.distributed.group.WORLD))
        if cuda:
            _cuda_scenarios(rank, size, comm, attempt)
        # Last: a failed call may leave messages of the processes that got further.
        bad = hidden[:, :, : FEATURES - 1] if rank == size - 1 else hidden
        attempt("mismatched_features", lambda: resrl.token_weights(bad, mask, scores, groups, comm=comm, **SETTINGS))
    except Exception as e:
        results["setup"] = {"error": type(e).__name__, "message": str(e), "trace": traceback.format_exc()}
    with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(results, f)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _collectives(comm):
    """sum of float32 and float64 buffers, gather of sizes r + 1 bytes (and
    0 bytes from the last process), batch_slice."""
    f32 = np.array([comm.rank + 1, 0.5 * comm.rank], dtype=np.float32)
    f64 = np.full(3, 10.0 ** comm.rank)
    comm.sum(f32)
    comm.sum(f64)
    sizes = tuple(0 if r == comm.size - 1 else r + 1 for r in range(comm.size))
    send = np.full(sizes[comm.rank], comm.rank + 100, dtype=np.uint8)
    send.flags.writeable = False  # the library hands its send buffer over read-only
    recv = np.zeros(sum(sizes), dtype=np.uint8)
    comm.gather(send, recv, sizes)
    return {"f32": f32, "f64": f64, "recv": recv, "slice": batch_slice(comm, 10 * (comm.rank + 1)),
            "rank": comm.rank, "size": comm.size}


def _device_collectives(comm):
    """sum_device and gather_device on CPU tensors (gloo takes them): the
    padded gather of unequal sizes (0 bytes from the last process), the
    direct one of equal sizes."""
    f32 = torch.tensor([comm.rank + 1, 0.5 * comm.rank], dtype=torch.float32)
    f64 = torch.full((3,), 10.0 ** comm.rank, dtype=torch.float64)
    comm.sum_device(f32)
    comm.sum_device(f64)
    sizes = tuple(0 if r == comm.size - 1 else r + 1 for r in range(comm.size))
    send = torch.full((sizes[comm.rank],), comm.rank + 100, dtype=torch.uint8)
    recv = torch.zeros(sum(sizes), dtype=torch.uint8)
    comm.gather_device(send, recv, sizes)
    equal = torch.zeros(3 * comm.size, dtype=torch.uint8)
    comm.gather_device(torch.full((3,), comm.rank + 1, dtype=torch.uint8), equal, (3,) * comm.size)
    return {"f32": f32.numpy(), "f64": f64.numpy(), "recv": recv.numpy(), "equal": equal.numpy(),
            "takes_cuda_tensors": comm.takes_cuda_tensors, "space": resrl.distributed.buffer_space(comm, True)}


def _cuda_scenarios(rank, size, comm, attempt):
    """The calls on CUDA tensors of this process's rows: gloo takes host
    buffers, so the library stages its collectives through the host."""
    torch.cuda.set_device(0)  # every process on the one device of the test machine
    _, parts = world_batch(size)
    hidden, mask, scores, groups = on_cuda(parts[rank])
    for name, settings in SCENARIOS.items():
        attempt("cuda_" + name, lambda: _weights(resrl.token_weights(
            hidden, mask, scores, groups, comm=comm, distances=True, **SETTINGS, **settings)))
    _, rollout_parts = rollout_layout(size)
    h, m, s = on_cuda(rollout_parts[rank])[:3]
    attempt("cuda_rollout_n", lambda: _weights(resrl.token_weights(h, m, s, rollout_n=4, comm=comm, solver="exact",
                                                                   **SETTINGS)))
    attempt("cuda_torch", lambda: resrl.torch.token_weights(
        hidden.to(torch.bfloat16), mask, scores, torch.from_numpy(groups), comm=torch.distributed.group.WORLD,
        rank=RANK, solver="exact").cpu().numpy())
    attempt("cuda_verl", lambda: _verl(*parts[rank], torch.distributed.group.WORLD, device="cuda"))


def _weights(result):
    def host(x):
        return None if x is None else x.cpu().numpy() if isinstance(x, torch.Tensor) else np.array(x)

    return {"weights": host(result.weights), "diagnostics": result.diagnostics, "distances": host(result.distances)}


def _verl(hidden, mask, scores, groups, group, device="cpu"):
    """The verl drop-in on this process's rows (tensors on `device`)."""
    uid = np.array([f"prompt-{g}" for g in groups], dtype=object)
    advantages = torch.from_numpy(np.where(scores > 0, 1.0, -1.0).astype(np.float32))[:, None] * torch.ones(mask.shape)
    token_scores = torch.zeros(mask.shape)
    token_scores[:, 0] = torch.from_numpy(scores)
    adv, _ = verl.reweight_advantages(uid, torch.from_numpy(mask).to(device), token_scores.to(device),
                                      advantages.to(device), torch.from_numpy(hidden).to(device), svd_rank=RANK,
                                      solver="exact", threads=1, process_group=group)
    assert adv.device.type == device
    return adv.cpu().numpy()


def run_world(size, tmp_path):
    """Starts `size` processes, waits at most WORLD_TIMEOUT s (plus
    CUDA_WORLD_TIMEOUT with the CUDA scenarios), and returns every process's
    results (a process that did not finish fails the test)."""
    cuda = cuda_runs()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(r, size, tmp_path / "rendezvous", tmp_path, cuda))
                 for r in range(size)]
    for p in processes:
        p.start()
    timeout = WORLD_TIMEOUT + (CUDA_WORLD_TIMEOUT if cuda else 0)
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
    for p in processes:
        p.join(max(0.0, (deadline - datetime.datetime.now()).total_seconds()))
    hung = [r for r, p in enumerate(processes) if p.is_alive()]
    for r in hung:
        processes[r].kill()
        processes[r].join()
    assert not hung, f"processes {hung} of {size} did not finish within {timeout} s (a hang)"
    results = []
    for r, p in enumerate(processes):
        assert p.exitcode == 0, f"process {r} exited with {p.exitcode}"
        with open(tmp_path / f"rank{r}.pkl", "rb") as f:
            results.append(pickle.load(f))
        assert "setup" not in results[r], results[r]["setup"]["trace"]
    return results


@pytest.fixture(scope="module", params=[2, 4], ids=["2-processes", "4-processes"])
def world(request, tmp_path_factory):
    size = request.param
    return size, run_world(size, tmp_path_factory.mktemp(f"world{size}"))


def ok(result):
    """A scenario's value, or the failure it reported (with its traceback)."""
    if isinstance(result, dict) and "error" in result and "trace" in result:
        pytest.fail(f"{result['error']}: {result['message']}\n{result['trace']}")
    return result


def test_collectives_against_hand_computed_values(world):
    size, results = world
    sizes = [0 if r == size - 1 else r + 1 for r in range(size)]
    expected_recv = np.concatenate([np.full(n, r + 100, dtype=np.uint8) for r, n in enumerate(sizes)])
    for r, result in enumerate(results):
        c = ok(result["collectives"])
        assert (c["rank"], c["size"]) == (r, size)
        np.testing.assert_array_equal(c["f32"], np.array([size * (size + 1) / 2, 0.5 * size * (size - 1) / 2],
                                                         dtype=np.float32))
        np.testing.assert_array_equal(c["f64"], np.full(3, sum(10.0 ** q for q in range(size))))
        np.testing.assert_array_equal(c["recv"], expected_recv)
        assert c["slice"] == (sum(10 * (q + 1) for q in range(r)), sum(10 * (q + 1) for q in range(size)))


def diagnostics_of(records, group):
    return records[records["group_id"] == group][0]


@pytest.mark.parametrize("scenario,tolerance", [("exact", 1e-5), ("randomized", 1e-4)])
def test_whole_group_weights_match_one_process(world, scenario, tolerance):
    size, results = world
    whole, parts = world_batch(size)
    single = resrl.token_weights(*whole, distances=True, **SETTINGS, **SCENARIOS[scenario])
    assert_rows_match(size, parts, [result[scenario] for result in results], _weights(single), tolerance)


def assert_rows_match(size, parts, per_process, single, tolerance):
    """Every process's weights, distances and diagnostics (`_weights` of
    its call) against its rows of the single-process call (`_weights` of
    the call on the whole batch)."""
    start = 0
    for r, (part, result) in enumerate(zip(parts, per_process)):
        got = ok(result)
        rows = slice(start, start + len(part[0]))
        start = rows.stop
        np.testing.assert_allclose(got["weights"], single["weights"][rows], rtol=0, atol=tolerance,
                                   err_msg=f"process {r} of {size}")
        np.testing.assert_allclose(got["distances"], single["distances"][rows], rtol=tolerance, atol=tolerance,
                                   err_msg=f"process {r} of {size}")
        # One record per group present here, in local first-appearance order, with whole-group values.
        local_groups = list(dict.fromkeys(part[3].tolist()))
        assert got["diagnostics"]["group_id"].tolist() == local_groups
        for group in local_groups:
            mine, whole_group = diagnostics_of(got["diagnostics"], group), diagnostics_of(single["diagnostics"], group)
            for field in ("positive_samples", "negative_samples", "positive_tokens", "positive_tokens_used",
                          "negative_tokens", "rank", "skipped", "degenerate_range"):
                assert mine[field] == whole_group[field], (r, group, field)
            for field in ("quantile_low_value", "quantile_high_value", "weight_mean", "weight_min", "weight_max"):
                np.testing.assert_allclose(mine[field], whole_group[field], rtol=tolerance, atol=tolerance,
                                           err_msg=f"process {r}, group {group}, {field}")


def test_split_groups_are_weighted_as_whole_groups(world):
    """The layouts do what they claim: group 7 is weighted, yet some process
    holds only its positives, another only its negatives (alone it would be
    skipped there)."""
    size, results = world
    _, parts = world_batch(size)
    signs = [set(bool(s > 0) for s, g in zip(p[2], p[3]) if g == 7) for p in parts]
    assert {True} in signs and {False} in signs
    assert any({2, 5, 7, 9} - set(p[3].tolist()) for p in parts)  # a process holds nothing of some group
    for part, sign, result in zip(parts, signs, results):
        if not sign:
            continue
        assert diagnostics_of(ok(result["exact"])["diagnostics"], 7)["skipped"] == resrl.SkipReason.none.value
        if len(sign) == 1:  # one sign only: alone, this process would skip the group
            alone = resrl.token_weights(*part, **SETTINGS, solver="exact").diagnostics
            assert diagnostics_of(alone, 7)["skipped"] != resrl.SkipReason.none.value


def test_rollout_n_counts_in_the_concatenated_batch(world):
    size, results = world
    whole, parts = rollout_layout(size)
    single = resrl.token_weights(*whole[:3], rollout_n=4, solver="exact", **SETTINGS)
    assert_rollout_rows_match(parts, [result["rollout_n"] for result in results], single.weights)


def assert_rollout_rows_match(parts, per_process, single_weights):
    start = 0
    for part, result in zip(parts, per_process):
        got = ok(result)
        rows = slice(start, start + len(part[0]))
        start = rows.stop
        np.testing.assert_allclose(got["weights"], single_weights[rows], rtol=0, atol=1e-5)
        global_groups = list(dict.fromkeys((np.arange(rows.start, rows.stop) // 4).tolist()))
        assert got["diagnostics"]["group_id"].tolist() == global_groups


def test_torch_and_verl_wrappers_take_a_process_group(world):
    size, results = world
    assert_wrappers_match(size, results, "cpu", "")


def assert_wrappers_match(size, results, device, prefix):
    whole, parts = world_batch(size)
    hidden, mask, scores, groups = whole
    bf16 = torch.from_numpy(hidden).to(torch.bfloat16).to(device)
    single = resrl.torch.token_weights(bf16, torch.from_numpy(mask).to(device), torch.from_numpy(scores).to(device),
                                       torch.from_numpy(groups), rank=RANK, solver="exact").cpu().numpy()
    single_verl = _verl(hidden, mask, scores, groups, None, device=device)
    start = 0
    for part, result in zip(parts, results):
        rows = slice(start, start + len(part[0]))
        start = rows.stop
        np.testing.assert_allclose(ok(result[prefix + "torch"]), single[rows], rtol=0, atol=1e-5)
        np.testing.assert_allclose(ok(result[prefix + "verl"]), single_verl[rows], rtol=0, atol=1e-5)


def test_device_methods_of_torch_communicator(world):
    """sum_device and gather_device against hand-computed values (CPU
    tensors on gloo, whose group takes no CUDA tensors: its calls on CUDA
    arrays get host buffers)."""
    size, results = world
    sizes = [0 if r == size - 1 else r + 1 for r in range(size)]
    expected_recv = np.concatenate([np.full(n, r + 100, dtype=np.uint8) for r, n in enumerate(sizes)])
    for r, result in enumerate(results):
        c = ok(result["device_collectives"])
        np.testing.assert_array_equal(c["f32"], np.array([size * (size + 1) / 2, 0.5 * size * (size - 1) / 2],
                                                         dtype=np.float32))
        np.testing.assert_array_equal(c["f64"], np.full(3, sum(10.0 ** q for q in range(size))))
        np.testing.assert_array_equal(c["recv"], expected_recv)
        np.testing.assert_array_equal(c["equal"], np.repeat(np.arange(1, size + 1, dtype=np.uint8), 3))
        assert (c["takes_cuda_tensors"], c["space"]) == (False, "host")


needs_cuda = pytest.mark.skipif(not cuda_runs(), reason="no CUDA device, or resrl built without CUDA")


@needs_cuda
@pytest.mark.parametrize("scenario,tolerance", [("exact", 1e-5), ("randomized", 1e-4)])
def test_cuda_tensors_on_a_gloo_group_match_one_process(world, scenario, tolerance):
    """CUDA tensors with a gloo group (host buffers: the library stages its
    collectives through the host), against the single-process CUDA call on
    the whole batch."""
    size, results = world
    whole, parts = world_batch(size)
    single = resrl.token_weights(*on_cuda(whole), distances=True, **SETTINGS, **SCENARIOS[scenario])
    assert single.weights.is_cuda
    assert_rows_match(size, parts, [result["cuda_" + scenario] for result in results], _weights(single), tolerance)


@needs_cuda
def test_cuda_tensors_on_a_gloo_group_rollout_n_and_wrappers(world):
    size, results = world
    whole, parts = rollout_layout(size)
    single = resrl.token_weights(*on_cuda(whole)[:3], rollout_n=4, solver="exact", **SETTINGS)
    assert_rollout_rows_match(parts, [result["cuda_rollout_n"] for result in results], single.weights.cpu().numpy())
    assert_wrappers_match(size, results, "cuda", "cuda_")


def test_mismatched_hidden_size_raises_on_every_process(world):
    size, results = world
    for r, result in enumerate(results):
        failure = result["mismatched_features"]
        assert isinstance(failure, dict) and failure.get("error") in ("InvalidArgument",), (r, failure)
        assert "hidden" in failure["message"], failure["message"]


def test_single_process_communicator_is_the_plain_call(batch):
    """A communicator of one process: the distributed path gives the plain
    call's result (no torch.distributed needed)."""
    plain = resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, rank=RANK, solver="exact")
    one = resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, rank=RANK, solver="exact",
                              comm=OneProcess())
    np.testing.assert_allclose(one.weights, plain.weights, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(one.diagnostics["group_id"], plain.diagnostics["group_id"])


def test_comm_errors_name_the_argument(batch):
    with pytest.raises(resrl.InvalidArgument, match="comm: .* has no attribute rank"):
        resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, comm=object())

    class Broken(resrl.distributed.Communicator):
        rank, size = 0, 2

        def sum(self, buffer):
            raise RuntimeError("peer lost")

        def gather(self, send, recv, sizes):
            raise RuntimeError("peer lost")

    with pytest.raises(RuntimeError, match="peer lost"):  # the communicator's own error comes through
        resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, comm=Broken())
    with pytest.raises(resrl.InvalidArgument, match="comm: rank 3 and size 2"):
        bad = Broken()
        bad.rank = 3
        resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, comm=bad)


class DeviceCapable(OneProcess):
    """A one-process communicator that takes CUDA tensors too."""

    takes_cuda_tensors = True

    def sum_device(self, buffer):
        pass

    def gather_device(self, send, recv, sizes):
        recv.copy_(send)


def test_buffer_space_by_communicator_and_arrays():
    """Device buffers only for CUDA arrays and a communicator that takes
    CUDA tensors; host buffers otherwise (the library stages CUDA data)."""
    space = resrl.distributed.buffer_space
    assert (space(OneProcess(), False), space(OneProcess(), True)) == ("host", "host")
    assert (space(DeviceCapable(), False), space(DeviceCapable(), True)) == ("host", "device")

    class HostOnly(resrl.distributed.Communicator):  # the protocol's defaults: takes_cuda_tensors = False
        rank, size = 0, 1

    assert space(HostOnly(), True) == "host"
    assert resrl._resrl.communicator_space(DeviceCapable(), True) == "device"


def test_torch_backends_and_their_buffers():
    """(takes CPU tensors, takes CUDA tensors natively) by backend name:
    only NCCL gets device buffers; a mixed group takes both."""
    kinds = resrl.distributed._backend_buffers
    assert kinds("gloo") == (True, False)
    assert kinds("mpi") == (True, False)
    assert kinds("nccl") == (False, True)
    assert kinds("cpu:gloo,cuda:nccl") == (True, True)


def test_malformed_device_communicators_are_refused(batch):
    """A communicator that claims CUDA tensors must have the device methods
    and a bool flag: refused with host arrays too, before any collective."""

    class NoDeviceMethods(OneProcess):
        takes_cuda_tensors = True

    class NotABool(DeviceCapable):
        takes_cuda_tensors = 1

    for comm, message in ((NoDeviceMethods(), "comm: .*NoDeviceMethods has no method sum_device"),
                          (NotABool(), "comm.takes_cuda_tensors: expected a bool, got int")):
        for cuda_arrays in (False, True):
            with pytest.raises(resrl.InvalidArgument, match=message):
                resrl.distributed.buffer_space(comm, cuda_arrays)
        with pytest.raises(resrl.InvalidArgument, match=message):
            resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, comm=comm)


class ThreadWorld:
    """`size` threads of one process standing in for processes: a
    Communicator per thread (the protocol without torch), meeting at a
    barrier. Every thread adds the buffers in rank order, so all get the
    same sums, as the protocol requires."""

    def __init__(self, size):
        import threading

        self.size = size
        self.barrier = threading.Barrier(size, timeout=COLLECTIVE_TIMEOUT)
        self.slots = [None] * size

    def exchange(self, rank, value):
        self.slots[rank] = value
        self.barrier.wait()
        values = list(self.slots)
        self.barrier.wait()  # nobody overwrites a slot before everyone has read it
        return values

    def communicator(self, rank):
        world = self

        class Member(resrl.distributed.Communicator):
            def __init__(self):
                self.rank, self.size = rank, world.size

            def sum(self, buffer):
                parts = world.exchange(rank, buffer.copy())
                total = parts[0].copy()
                for part in parts[1:]:
                    total += part
                buffer[:] = total

            def gather(self, send, recv, sizes):
                recv[:] = np.concatenate(world.exchange(rank, send.copy()))

        return Member()


@pytest.mark.parametrize("size", [2, 4])
def test_threads_of_one_process_as_the_processes(size):
    """The distributed call from several threads at once, each with its own
    communicator: every collective takes the GIL back inside calls that run
    without it, with several calls in flight, and the results equal the
    single-process call."""
    import concurrent.futures

    whole, parts = world_batch(size)
    world = ThreadWorld(size)
    with concurrent.futures.ThreadPoolExecutor(size) as pool:
        futures = [pool.submit(resrl.token_weights, *part, comm=world.communicator(r), solver="exact", **SETTINGS)
                   for r, part in enumerate(parts)]
        results = [f.result(timeout=WORLD_TIMEOUT) for f in futures]
    single = resrl.token_weights(*whole, solver="exact", **SETTINGS)
    np.testing.assert_allclose(np.concatenate([r.weights for r in results]), single.weights, rtol=0, atol=1e-5)


def test_host_arrays_use_host_methods_of_a_device_capable_communicator():
    """Host arrays: sum and gather on NumPy arrays even when the
    communicator takes CUDA tensors (its device methods are never called)."""
    import concurrent.futures

    whole, parts = world_batch(2)
    world = ThreadWorld(2)
    members = [world.communicator(r) for r in range(2)]
    device_calls = []
    for member in members:
        member.takes_cuda_tensors = True
        member.sum_device = lambda *args: device_calls.append("sum_device")
        member.gather_device = lambda *args: device_calls.append("gather_device")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(resrl.token_weights, *part, comm=members[r], solver="exact", **SETTINGS)
                   for r, part in enumerate(parts)]
        results = [f.result(timeout=WORLD_TIMEOUT) for f in futures]
    assert device_calls == []
    single = resrl.token_weights(*whole, solver="exact", **SETTINGS)
    np.testing.assert_allclose(np.concatenate([r.weights for r in results]), single.weights, rtol=0, atol=1e-5)
