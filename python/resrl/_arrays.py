"""How the package meets its callers' arrays: outputs are allocated where the
inputs live (a torch tensor on the same device, otherwise a NumPy array), torch
tensors that require grad are detached (a view, no copy), and per-sample
vectors (B numbers) are converted to the library's element type when they
have another. (B, T) and (B, T, H) arrays are never copied: a wrong type is a
TypeError from the native module.

torch is never imported here: NumPy users do not pay for it, and a torch
tensor can only exist once the caller has imported torch.
"""

import sys

import numpy as np

from ._resrl import InvalidArgument

_DLPACK_CPU = 1
_DLPACK_CUDA_HOST = 3  # pinned host memory


def torch_tensor_type():
    """torch.Tensor when torch has been imported, else None."""
    torch = sys.modules.get("torch")
    return torch.Tensor if torch is not None else None


def is_torch(x):
    tensor = torch_tensor_type()
    return tensor is not None and isinstance(x, tensor)


def exportable(x):
    """x as DLPack can export it, without a copy: torch tensors that require
    grad are detached, and torch bool tensors viewed as uint8 (torch 1.13
    cannot export bool; the library reads both as nonzero = true)."""
    if not is_torch(x):
        return x
    if x.requires_grad:
        x = x.detach()
    if x.dtype == sys.modules["torch"].bool:
        x = x.view(sys.modules["torch"].uint8)
    return x


def shape_of(x, name, layout):
    """x.shape for an array laid out as `layout` (e.g. "(B, T)"); a TypeError
    or InvalidArgument naming the argument otherwise."""
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"{name}: expected an array (NumPy, PyTorch or any DLPack producer), got {type(x).__name__}")
    ndim = sum(c.isalpha() for c in layout)
    if len(shape) != ndim:
        raise InvalidArgument(f"resrl: {name}: expected a {ndim}-d array {layout}, got {len(shape)} dimensions")
    return tuple(shape)


def as_vector(x, dtype, name):
    """A per-sample vector of `dtype` (a NumPy dtype name): arrays of another
    element type are converted (B numbers), lists become NumPy arrays, and
    anything two-dimensional or already right passes through untouched."""
    if x is None:
        return None
    if is_torch(x):
        x = exportable(x)
        want = getattr(sys.modules["torch"], dtype)
        return x.to(want) if x.dim() == 1 and x.dtype != want else x
    if isinstance(x, np.ndarray):
        return x.astype(dtype) if x.ndim == 1 and x.dtype != dtype else x
    if isinstance(x, (list, tuple)):
        return np.asarray(x, dtype=dtype)
    if hasattr(x, "__dlpack__") or hasattr(x, "__array_interface__"):
        return x  # another framework's array: the module checks its type
    raise TypeError(f"{name}: expected an array or a list of numbers, got {type(x).__name__}")


def empty(like, shape, dtype):
    """An uninitialised output of `dtype` (a NumPy dtype name) next to `like`:
    a torch tensor on like's device for torch inputs, else a NumPy array for
    host arrays. Device arrays of other frameworks need out= buffers."""
    if is_torch(like):
        torch = sys.modules["torch"]
        return torch.empty(shape, dtype=getattr(torch, dtype), device=like.device)
    if not isinstance(like, np.ndarray) and hasattr(like, "__dlpack_device__"):
        device_type = like.__dlpack_device__()[0]
        if device_type not in (_DLPACK_CPU, _DLPACK_CUDA_HOST):
            raise ValueError(
                f"outputs for device arrays of {type(like).__name__} cannot be allocated here: "
                "pass out= buffers (or torch tensors)"
            )
    return np.empty(shape, dtype=dtype)


def stream_of(like, stream):
    """The CUDA stream handle a call runs on: `stream` when given (an int or
    any object with .cuda_stream, e.g. torch.cuda.Stream), else PyTorch's
    current stream on like's device for CUDA tensors, else 0 (the default
    stream; ignored on the host)."""
    if stream is not None:
        return int(getattr(stream, "cuda_stream", stream))
    if is_torch(like) and like.is_cuda:
        return sys.modules["torch"].cuda.current_stream(like.device).cuda_stream
    return 0


def host_numpy(x):
    """A NumPy view (host arrays, torch CPU tensors) or copy (device
    tensors) of x, for small results read on the host."""
    if is_torch(x):
        return x.cpu().numpy() if x.is_cuda else x.numpy()
    return np.asarray(x)


def enum_member(enum_type, name, value):
    """`value` as a member of `enum_type`: a member, or its name as a string
    (hyphens allowed for underscores, e.g. "token-mean")."""
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        try:
            return enum_type[value.replace("-", "_")]
        except KeyError:
            pass
    choices = ", ".join(repr(m.name) for m in enum_type)
    raise ValueError(f"{name}: {value!r} is not one of {choices}")
