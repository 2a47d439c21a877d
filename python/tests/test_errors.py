"""Every bad input is an exception naming the argument: library errors keep
their messages as resrl.InvalidArgument / resrl.NonFiniteInput (both
ValueError), unsupported types are TypeError. And the GIL is released while
the library computes."""

import threading

import numpy as np
import pytest

import resrl
from conftest import make_batch


def test_exception_hierarchy():
    assert issubclass(resrl.InvalidArgument, ValueError) and issubclass(resrl.InvalidArgument, resrl.Error)
    assert issubclass(resrl.NonFiniteInput, resrl.InvalidArgument)
    assert issubclass(resrl.WorkspaceTooSmall, resrl.InvalidArgument)
    assert issubclass(resrl.NumericalError, resrl.Error) and issubclass(resrl.Error, RuntimeError)
    assert resrl.InvalidArgument.__module__ == "resrl"


def call_with(batch, **replace):
    args = dict(hidden=batch.hidden, mask=batch.mask, scores=batch.scores, groups=batch.groups, rank=4)
    args.update(replace)
    return resrl.token_weights(**args)


@pytest.mark.parametrize("name, value, message", [
    ("mask", np.ones((8, 24), np.int16), "mask: elements of type int16 are not supported for a mask"),
    ("hidden", np.ones((8, 24, 48), np.int32), "hidden: hidden states of type int32 are not supported"),
    ("hidden", np.ones((8, 24, 48), np.complex64), "hidden: hidden states of type complex64"),
    ("hidden", [[[1.0]]], "hidden: expected an array"),
    ("mask", "all", "mask: expected an array (NumPy, PyTorch or any DLPack producer), got str"),
    ("scores", np.ones((8, 24), np.float64), "scores: expected float32 elements, got float64"),
    ("groups", {"a": 1}, "groups: expected an array or a list of numbers, got dict"),
    ("rank", "4", "rank: expected int, got '4'"),
    ("min_weight", None, "min_weight: expected float, got None"),
])
def test_unsupported_types_are_type_errors(batch, name, value, message):
    with pytest.raises(TypeError) as error:
        call_with(batch, **{name: value})
    assert message in str(error.value)


@pytest.mark.parametrize("name, value, message", [
    ("mask", np.ones((8, 23), bool), "mask: shape (8, 23) but hidden has (B, T) = (8, 24)"),
    ("mask", np.ones(8, bool), "mask: expected a 2-d array (B, T), got 1 dimensions"),
    ("hidden", np.ones((8, 24)), "hidden: expected a 3-d array (B, T, H), got 2 dimensions"),
    ("hidden", np.ones((8, 24, 96))[:, :, ::2], "hidden: the feature dimension must be contiguous"),
    ("scores", np.ones(7, np.float32), "resrl: scores.per_sample: size 7 but expected 8"),
    ("groups", np.arange(3), "resrl: grouping.ids: size 3 but expected 8"),
])
def test_bad_shapes_are_invalid_arguments_naming_the_argument(batch, name, value, message):
    with pytest.raises(resrl.InvalidArgument) as error:
        call_with(batch, **{name: value})
    assert message in str(error.value)


def test_library_messages_pass_through(batch):
    with pytest.raises(ValueError, match="token_weight_params.rank must be >= 1, got 0"):
        resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, rank=0)
    with pytest.raises(resrl.InvalidArgument, match="grouping: no group ids and rollout_n = 0"):
        resrl.token_weights(batch.hidden, batch.mask, batch.scores)
    with pytest.raises(ValueError, match="solver: 'svd' is not one of 'exact', 'randomized'"):
        resrl.token_weights(batch.hidden, batch.mask, batch.scores, batch.groups, solver="svd")
    with pytest.raises(ValueError, match="weighting: 'ppo' is not one of"):
        resrl.reweight_advantages(np.zeros((2, 2), np.float32), np.ones((2, 2)), [1, 0], weighting="ppo")
    with pytest.raises(resrl.InvalidArgument, match="pass_at_k: k must be in"):
        resrl.pass_at_k(4, 1, 5)


def test_non_finite_inputs_name_sample_and_token(batch):
    hidden = batch.hidden.copy()
    hidden[2, 3, 5] = np.nan
    with pytest.raises(resrl.NonFiniteInput, match="sample 2, token 3"):
        resrl.token_weights(hidden, batch.mask, batch.scores, batch.groups, rank=4)
    logp = np.zeros((2, 3))
    logp[1, 2] = np.inf
    with pytest.raises(resrl.NonFiniteInput, match=r"logp\[1, 2\]"):
        resrl.policy_loss(logp, np.zeros((2, 3)), np.ones((2, 3)), np.ones((2, 3)))


def test_policy_loss_arrays_must_share_the_type_of_logp():
    with pytest.raises(TypeError, match="old_logp: expected float32 elements .the type of logp., got float64"):
        resrl.policy_loss(np.zeros((2, 3), np.float32), np.zeros((2, 3)), np.ones((2, 3), np.float32),
                          np.ones((2, 3)))


def test_outputs_must_be_writable_float32(batch):
    out = np.empty(batch.shape, np.float32)
    out.flags.writeable = False
    with pytest.raises(TypeError, match="out: the output array is read-only"):
        call_with(batch, out=out)
    with pytest.raises(TypeError, match="out: expected float32 elements, got float64"):
        call_with(batch, out=np.empty(batch.shape))


def test_the_gil_is_released_while_computing():
    b = make_batch(seed=5, groups=4, per_group=8, tokens=256, features=384)
    hidden = b.hidden.astype(np.float32)
    worker = threading.Thread(
        target=lambda: resrl.token_weights(hidden, b.mask, b.scores, b.groups, solver="exact", threads=1))
    iterations = 0
    worker.start()
    while worker.is_alive():  # runs only while the worker does not hold the GIL
        iterations += 1
    worker.join()
    assert iterations > 10000
