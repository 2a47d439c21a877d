"""Unit tests of the RLVR example's task, verifier, sampler and the
shared-prefix marking (pytest examples/rlvr)."""

import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rlvr  # noqa: E402
import task  # noqa: E402
from model import TinyDecoder  # noqa: E402


def test_canonical_response_and_lengths():
    assert task.prompt_text(347, 285, 3) == "347+285="
    assert task.response_text(347, 285, 3) == "7+5+0=12,4+8+1=13,3+2+1=06|0632$"
    assert task.response_text(9999, 1, 4) == "9+1+0=10,9+0+1=10,9+0+1=10,9+0+1=10|10000$"
    rng = np.random.default_rng(0)
    for digits in (1, 3, 4, 5):
        for a, b in task.sample_problems(rng, 50, digits):
            assert len(task.prompt_text(a, b, digits)) == task.prompt_length(digits)
            text = task.response_text(a, b, digits)
            assert len(text) == task.response_length(digits)
            assert task.reward(a, b, digits, task.encode(text)) == 1.0


@pytest.mark.parametrize("response, expected", [
    ("7+5+0=12,4+8+1=13,3+2+1=06|0632$", 1.0),
    ("wrong steps|0632$", None),            # outcome reward: the steps are not checked
    ("7+5+0=12,4+8+1=13,3+2+1=06|0632$$$", 1.0),  # padding after the end token
    ("7+5+0=12,4+8+1=13,3+2+1=06|0632", 0.0),     # no end token
    ("7+5+0=12,4+8+1=13,3+2+1=06|0633$", 0.0),
    ("7+5+0=12,4+8+1=13,3+2+1=06|632$", 0.0),     # not zero-padded
    ("7+5+0=12|4+8+1=13,3+2+1=06|0632$", 0.0),    # two separators
    ("7+5+0=12,4+8+1=13,3+2+1=06,0632$", 0.0),    # no separator
    ("$7+5+0=12|0632$", 0.0),                      # ends before the answer
])
def test_verifier(response, expected):
    if expected is None:
        response, expected = "7+5+0=99,|0632$", 1.0
    assert task.reward(347, 285, 3, task.encode(response)) == expected


def test_held_out_prompts_never_drawn_for_training():
    config = rlvr.settings(quick=True)
    evaluation, validation, held_out = rlvr.fixed_sets(config)
    assert len(set(evaluation)) == len(evaluation) and not set(evaluation) & set(validation)
    drawn = task.sample_problems(np.random.default_rng(1), 2000, config["digits"], held_out)
    assert not set(drawn) & held_out


def test_sampler_ends_responses_and_cache_matches_full_forward():
    torch.manual_seed(0)
    # fp32: bf16 rounding could differ between the cached and the full forward
    model = TinyDecoder(len(task.VOCAB), width=32, heads=2, depth=2, max_length=32, bf16=False).eval()
    prompts = torch.randint(1, len(task.VOCAB), (6, 5))
    tokens, entropy = model.sample(prompts, 12, task.EOS, torch.Generator().manual_seed(0))
    assert tokens.shape == (6, 12) and entropy.shape == (6,) and bool((entropy > 0).all())
    for row in tokens.tolist():  # everything after the first end token is the end token
        if task.EOS in row:
            assert set(row[row.index(task.EOS):]) == {task.EOS}
    greedy, _ = model.sample(prompts, 8, task.EOS, temperature=0)
    with torch.no_grad():  # the cached greedy tokens are the argmax of full forwards
        for step in range(8):
            logits = model(torch.cat([prompts, greedy[:, :step]], 1))[:, -1]
            live = ~(greedy[:, :step] == task.EOS).any(1)
            assert torch.equal(logits.argmax(-1)[live], greedy[live, step])


def test_shared_prefix_marks_negative_tokens_that_follow_a_positive_response():
    responses = torch.tensor([[1, 2, 3, 0], [1, 2, 4, 0], [1, 5, 3, 0], [2, 2, 3, 0]])
    mask = torch.ones(4, 4, dtype=torch.bool)
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])
    shared = rlvr.shared_prefix(responses, mask, rewards, rollouts=4)
    expected = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(shared, expected)
    assert not rlvr.shared_prefix(responses, mask, rewards, rollouts=1)[1:].any()  # groups of one: no positive
