"""Token weights of prompt groups whose responses are spread over several
processes (docs/python.md, "Across processes").

`resrl.token_weights(..., comm=...)` makes every process compute the weights
that one process holding the whole batch would: process r's batch is the
samples [offset_r, offset_r + B_r) of the batch made by concatenating the
processes' batches in rank order, and group ids are global. The call is
collective (every process of the communicator makes it, with its own rows,
possibly none) and runs on the trainer's own communicator; the library opens
no connection.

A communicator is any object with the four members of `Communicator`; the
library calls them on the calling thread, with host NumPy buffers that alias
its own memory for the duration of one call. `TorchCommunicator` wraps a
torch.distributed process group.
"""

import sys
from typing import Optional, Sequence

import numpy as np

__all__ = ["Communicator", "TorchCommunicator", "as_communicator", "batch_slice"]


class Communicator:
    """What the library needs of the processes sharing a batch: an in-place
    sum and an all-gather of byte buffers whose sizes differ per process.

    rank: this process's index in [0, size). size: number of processes.
    Every process makes the same sequence of calls with the same counts.
    """

    rank: int
    size: int

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


def _torch():
    torch = sys.modules.get("torch")
    if torch is None:
        import torch  # noqa: F811: only when a torch communicator is asked for
    return torch


class TorchCommunicator(Communicator):
    """A torch.distributed process group as a resrl communicator.

    group: the process group (None: the default group). The processes of
    the group must be the ones holding the rows of the batch's groups, e.g.
    the data-parallel group of a trainer; every process of the group calls
    the distributed functions together.

    Backends: a group whose backend takes CPU tensors (gloo, mpi, or a mixed
    "cpu:gloo,cuda:nccl" group) runs on the library's buffers themselves
    (torch.from_numpy, no copy). An NCCL-only group runs on CUDA tensors:
    each collective copies its buffer to the current CUDA device and back.

    Sum: one all_reduce. Gather: one all_gather of buffers padded to the
    largest size (gloo and NCCL all-gather equal sizes), so it moves
    size x max(sizes) bytes into every process, then trims.
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
        backend = str(dist.get_backend(group)).lower()
        host = any(name in backend for name in ("gloo", "mpi", "ucc"))
        # NCCL moves only CUDA tensors: the buffers are staged on the current device.
        self._device = None if host else torch.device("cuda", torch.cuda.current_device())
        self.backend = backend

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
        sizes = [int(n) for n in sizes]
        if len(sizes) != self.size:
            raise ValueError(f"gather: sizes has {len(sizes)} entries, expected one per process ({self.size})")
        if send.nbytes != sizes[self.rank]:
            raise ValueError(f"gather: send has {send.nbytes} bytes but sizes[{self.rank}] = {sizes[self.rank]}")
        if recv.nbytes != sum(sizes):
            raise ValueError(f"gather: recv has {recv.nbytes} bytes, expected sum(sizes) = {sum(sizes)}")
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
