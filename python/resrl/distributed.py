"""Token weights of prompt groups whose responses are spread over several
processes (docs/python.md, "Across processes").

`resrl.token_weights(..., comm=...)` makes every process compute the weights
that one process holding the whole batch would: process r's batch is the
samples [offset_r, offset_r + B_r) of the batch made by concatenating the
processes' batches in rank order, and group ids are global. The call is
collective (every process of the communicator makes it, with its own rows,
possibly none) and runs on the trainer's own communicator; the library opens
no connection.

A communicator is any object with the members of `Communicator`; the
library calls them on the calling thread, with buffers that alias its own
memory for the duration of one collective:

- host buffers (`sum`, `gather` on NumPy arrays): for host arrays, and for
  CUDA arrays when the communicator does not take CUDA tensors. The CUDA
  backend then stages its buffers through host copies itself: per
  collective, a device-to-host and a host-to-device copy of its payload and
  a wait for the call's stream.
- device buffers (`sum_device`, `gather_device` on torch CUDA tensors on the
  arrays' device): for CUDA arrays when the communicator says
  `takes_cuda_tensors = True` (TorchCommunicator on a group with NCCL). No
  host round trip; the collectives are ordered with the library's kernels
  on the call's stream (the stream rule: see `Communicator`).

Every process passes arrays of the same kind (host or CUDA): the two
backends make different collectives. `buffer_space(comm, cuda_arrays)` says
which buffers a call would use. `TorchCommunicator` wraps a
torch.distributed process group.
"""

import sys
from contextlib import nullcontext
from typing import Optional, Sequence

import numpy as np

from . import _resrl

__all__ = ["Communicator", "TorchCommunicator", "as_communicator", "batch_slice", "buffer_space"]


class Communicator:
    """What the library needs of the processes sharing a batch: an in-place
    sum and an all-gather of byte buffers whose sizes differ per process.

    rank: this process's index in [0, size). size: number of processes.
    Every process makes the same sequence of calls with the same counts.

    sum and gather (host buffers) are always required. A communicator that
    moves CUDA tensors natively sets `takes_cuda_tensors = True` and adds
    sum_device and gather_device: the calls on CUDA arrays then hand it torch
    CUDA tensors aliasing the library's device buffers (no copy), on the
    device of the call's arrays. Stream rule: while a device method runs,
    torch's current stream on that device is the stream the library's
    kernels run on (the call's `stream`: by default torch's current stream,
    and an explicit one is made current for the call), and the kernels that
    filled the buffers are queued on it before the method is called; the
    kernels that read the result are queued on it after the method returns.
    So a device method must enqueue its work on torch's current stream (or
    make it wait for that stream first), and leave the current stream
    waiting for the result: torch.distributed's collectives on an NCCL
    group do exactly that (ProcessGroupNCCL's stream waits for the current
    stream, and a synchronous collective makes the current stream wait for
    it), as do plain torch operations. The device methods are not called
    for empty buffers (every process has the same counts, so all skip alike).
    """

    rank: int
    size: int
    #: Whether sum_device and gather_device take CUDA tensors (checked when
    #: the call's arrays are CUDA arrays); False: host buffers only.
    takes_cuda_tensors: bool = False

    def sum(self, buffer: np.ndarray) -> None:
        """buffer[i] <- the sum of buffer[i] over all processes (1-d float32
        or float64, written in place; every process receives the same
        values)."""
        raise NotImplementedError

    def gather(self, send: np.ndarray, recv: np.ndarray, sizes: Sequence[int]) -> None:
        """recv <- the concatenation in rank order of every process's `send`
        (1-d uint8, read-only). sizes[r] is the byte count process r sends,
        the same tuple on every process; recv (1-d uint8) holds their sum."""
        raise NotImplementedError

    def sum_device(self, buffer) -> None:
        """sum on a 1-d float32 or float64 torch CUDA tensor, in place, on
        torch's current stream (only with takes_cuda_tensors)."""
        raise NotImplementedError

    def gather_device(self, send, recv, sizes: Sequence[int]) -> None:
        """gather on 1-d uint8 torch CUDA tensors, on torch's current stream
        (only with takes_cuda_tensors). `send` must not be written (torch
        has no read-only tensors)."""
        raise NotImplementedError


def _torch():
    torch = sys.modules.get("torch")
    if torch is None:
        import torch  # noqa: F811: only when a torch communicator is asked for
    return torch


def _backend_buffers(backend: str):
    """(takes CPU tensors, takes CUDA tensors natively) of a torch.distributed
    backend name: "gloo", "nccl", "mpi", "ucc" or a mixed one such as
    "cpu:gloo,cuda:nccl". Natively means NCCL: gloo moves CUDA tensors
    through host copies of its own, no better than the library's staging."""
    backend = backend.lower()
    return any(name in backend for name in ("gloo", "mpi", "ucc")), "nccl" in backend


class TorchCommunicator(Communicator):
    """A torch.distributed process group as a resrl communicator.

    group: the process group (None: the default group). The processes of
    the group must be the ones holding the rows of the batch's groups, e.g.
    the data-parallel group of a trainer; every process of the group calls
    the distributed functions together.

    Host buffers (sum, gather): a group whose backend takes CPU tensors
    (gloo, mpi, ucc, or a mixed "cpu:gloo,cuda:nccl" group) runs on the
    library's buffers themselves (torch.from_numpy, no copy). An NCCL-only
    group runs on CUDA tensors: each collective copies its buffer to the
    current CUDA device and back.

    Device buffers (sum_device, gather_device; takes_cuda_tensors is True
    when the group's backend has NCCL, mixed groups included): the
    collectives run on the library's CUDA buffers themselves, on torch's
    current stream (NCCL orders them with it), with no host round trip.
    gloo and mpi groups take host buffers only: with CUDA arrays the library
    stages its data through the host.

    Sum: one all_reduce. Gather: one all_gather of buffers padded to the
    largest size (gloo and NCCL all-gather equal sizes), so it moves
    size x max(sizes) bytes into every process, then trims; on device
    buffers with equal sizes, straight into the library's buffer
    (all_gather_into_tensor) without padding.
    """

    def __init__(self, group=None):
        torch = _torch()
        dist = torch.distributed
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                "TorchCommunicator: torch.distributed is not initialised (call "
                "torch.distributed.init_process_group first)")
        self.group = group
        self.rank = dist.get_rank(group)
        self.size = dist.get_world_size(group)
        if self.rank < 0:
            raise ValueError(f"TorchCommunicator: this process (global rank {dist.get_rank()}) is not a member of "
                             f"the group {group!r}")
        self.backend = str(dist.get_backend(group)).lower()
        host, self.takes_cuda_tensors = _backend_buffers(self.backend)
        # NCCL moves only CUDA tensors: host buffers are staged on the current device.
        self._device = None if host else torch.device("cuda", torch.cuda.current_device())

    def __repr__(self):
        return f"TorchCommunicator(rank={self.rank}, size={self.size}, backend={self.backend!r})"

    def sum(self, buffer: np.ndarray) -> None:
        if buffer.size == 0:
            return  # every process has the same count: all skip
        torch = _torch()
        host = torch.from_numpy(buffer)  # aliases the library's buffer
        if self._device is None:
            torch.distributed.all_reduce(host, group=self.group)
        else:
            staged = host.to(self._device)
            torch.distributed.all_reduce(staged, group=self.group)
            host.copy_(staged)

    def gather(self, send: np.ndarray, recv: np.ndarray, sizes: Sequence[int]) -> None:
        sizes = self._checked_sizes(send.nbytes, recv.nbytes, sizes)
        width = max(sizes)
        if width == 0:
            return
        torch = _torch()
        mine = torch.empty(width, dtype=torch.uint8)
        mine.numpy()[: send.nbytes] = send  # through NumPy: torch warns on read-only arrays
        rows = torch.empty((self.size, width), dtype=torch.uint8, device=self._device)
        if self._device is not None:
            mine = mine.to(self._device)
        torch.distributed.all_gather(list(rows.unbind(0)), mine, group=self.group)
        rows = rows.cpu().numpy()
        offset = 0
        for r, count in enumerate(sizes):
            recv[offset : offset + count] = rows[r, :count]
            offset += count

    def sum_device(self, buffer) -> None:
        """sum on a tensor of the group's backend (a CUDA tensor for NCCL),
        in place, on torch's current stream."""
        if buffer.numel() == 0:
            return
        _torch().distributed.all_reduce(buffer, group=self.group)

    def gather_device(self, send, recv, sizes: Sequence[int]) -> None:
        """gather on 1-d uint8 tensors of the group's backend (CUDA tensors
        for NCCL), on torch's current stream: no host round trip."""
        sizes = self._checked_sizes(send.numel(), recv.numel(), sizes)
        width = max(sizes)
        if width == 0:
            return
        torch = _torch()
        if min(sizes) == width:  # equal sizes: recv is the gathered rows
            self._all_gather_into(recv, send)
            return
        mine = torch.zeros(width, dtype=torch.uint8, device=send.device)
        mine[: send.numel()].copy_(send)
        rows = torch.empty((self.size, width), dtype=torch.uint8, device=send.device)
        self._all_gather_into(rows.view(-1), mine)
        torch.cat([rows[r, :count] for r, count in enumerate(sizes)], out=recv)  # one kernel, no host sync

    def _all_gather_into(self, out, tensor) -> None:
        """out (size x tensor's count, contiguous) <- every process's tensor
        in rank order: one all_gather_into_tensor on NCCL groups (torch
        1.13+, _all_gather_base before), else all_gather into views."""
        dist = _torch().distributed
        if self.takes_cuda_tensors and out.is_cuda:
            into = getattr(dist, "all_gather_into_tensor", None) or getattr(dist, "_all_gather_base", None)
            if into is not None:
                into(out, tensor, group=self.group)
                return
        dist.all_gather(list(out.view(self.size, -1).unbind(0)), tensor, group=self.group)

    def _checked_sizes(self, send_bytes, recv_bytes, sizes):
        sizes = [int(n) for n in sizes]
        if len(sizes) != self.size:
            raise ValueError(f"gather: sizes has {len(sizes)} entries, expected one per process ({self.size})")
        if send_bytes != sizes[self.rank]:
            raise ValueError(f"gather: send has {send_bytes} bytes but sizes[{self.rank}] = {sizes[self.rank]}")
        if recv_bytes != sum(sizes):
            raise ValueError(f"gather: recv has {recv_bytes} bytes, expected sum(sizes) = {sum(sizes)}")
        return sizes


def as_communicator(comm) -> Optional[Communicator]:
    """`comm` as the library's communicator: None, a Communicator (or any
    object with its members), or a torch.distributed ProcessGroup (wrapped in
    a TorchCommunicator)."""
    if comm is None:
        return None
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and isinstance(comm, torch.distributed.ProcessGroup):
        return TorchCommunicator(comm)
    return comm


def batch_slice(comm: Communicator, batch: int):
    """(first, total): this process's first row in the concatenated batch
    and that batch's size (one gather of 8 bytes per process)."""
    counts = np.zeros(comm.size, dtype=np.int64)
    comm.gather(np.array([batch], dtype=np.int64).view(np.uint8), counts.view(np.uint8), (8,) * comm.size)
    return int(counts[: comm.rank].sum()), int(counts.sum())


def buffer_space(comm, cuda_arrays: bool = True) -> str:
    """Which buffers token_weights(..., comm=comm) hands `comm` (a
    Communicator or a ProcessGroup): "device" (sum_device / gather_device on
    torch CUDA tensors) for CUDA arrays when comm.takes_cuda_tensors, else
    "host" (sum / gather on NumPy arrays; for CUDA arrays the library stages
    its data through the host). Raises resrl.InvalidArgument as the call
    would for a communicator that lacks a member."""
    return _resrl.communicator_space(as_communicator(comm), bool(cuda_arrays))


def _dlpack_cuda_device(array) -> Optional[int]:
    """The CUDA device of an array (torch tensor or DLPack producer), or
    None for host memory."""
    device = getattr(array, "__dlpack_device__", None)
    if device is None:
        return None
    kind, index = device()
    return int(index) if int(kind) in (2, 13) else None  # kDLCUDA, kDLCUDAManaged


def _on_call_stream(array, stream: int):
    """Makes `stream` (a cudaStream_t handle) torch's current stream on the
    device of `array` while the distributed call runs, so that the device
    methods of a communicator, which enqueue on torch's current stream, are
    ordered with the library's kernels (the stream rule of Communicator).
    Nothing to do for host arrays, without torch, or when `stream` is
    already current (the default: resrl passes torch's current stream)."""
    torch = sys.modules.get("torch")
    device = _dlpack_cuda_device(array)
    if torch is None or device is None or not torch.cuda.is_available():
        return nullcontext()
    current = torch.cuda.current_stream(device)
    if current.cuda_stream == stream:
        return nullcontext()
    if stream == 0:
        return torch.cuda.stream(torch.cuda.default_stream(device))
    return torch.cuda.stream(torch.cuda.ExternalStream(stream, device=torch.device("cuda", device)))
