"""The synthetic, exactly verifiable task of the RLVR experiment: addition of
two n-digit numbers written as a chain of column steps.

Prompt "347+285=" (operands zero-padded to n digits). Response: one step per
column, least significant first, "a+b+c=ks" (digits of the two operands,
carry in, then carry out k and sum digit s), the steps joined by ",", then
"|", the sum zero-padded to n + 1 digits, and the end token "$":

    347+285=  7+5+0=12,4+8+1=13,3+2+1=06|0632$

Every prompt and every correct response has a fixed length, so the task
needs no padding inside prompts. The verifier gives reward 1 iff the text
after "|" (up to the first "$") is exactly the zero-padded sum: an outcome
reward, as in math RLVR; the steps are the model's reasoning, not checked.
"""

import numpy as np

VOCAB = "$0123456789+=,|"
EOS = 0  #: "$": end of response, also the padding after it
STOI = {ch: i for i, ch in enumerate(VOCAB)}


def encode(text):
    return [STOI[ch] for ch in text]


def decode(ids):
    return "".join(VOCAB[i] for i in ids)


def prompt_text(a, b, digits):
    return f"{a:0{digits}d}+{b:0{digits}d}="


def response_text(a, b, digits):
    """The canonical (correct) chain of column steps and the answer."""
    steps, carry = [], 0
    for i in range(digits):
        x, y = a // 10 ** i % 10, b // 10 ** i % 10
        total = x + y + carry
        steps.append(f"{x}+{y}+{carry}={total:02d}")
        carry = total // 10
    return ",".join(steps) + "|" + f"{a + b:0{digits + 1}d}" + "$"


def prompt_length(digits):
    return 2 * digits + 2


def response_length(digits):
    return 8 * digits + (digits - 1) + 1 + (digits + 1) + 1


def reward(a, b, digits, response_ids):
    """1.0 iff the response's answer (after "|", up to the first "$") is the
    exact zero-padded sum; 0.0 otherwise (no "$", no or several "|", a wrong
    or badly formatted answer)."""
    text = decode(response_ids)
    end = text.find("$")
    if end < 0:
        return 0.0
    body = text[:end]
    if body.count("|") != 1:
        return 0.0
    return 1.0 if body.split("|")[1] == f"{a + b:0{digits + 1}d}" else 0.0


def sample_problems(rng, count, digits, exclude=frozenset()):
    """`count` operand pairs drawn uniformly, none of them in `exclude`."""
    limit = 10 ** digits
    pairs = []
    while len(pairs) < count:
        a, b = (int(v) for v in rng.integers(0, limit, size=2))
        if (a, b) not in exclude:
            pairs.append((a, b))
    return pairs


def prompt_batch(pairs, digits):
    """(N, prompt_length) int64 array of the prompts."""
    return np.array([encode(prompt_text(a, b, digits)) for a, b in pairs], dtype=np.int64)


def response_batch(pairs, digits):
    """(N, response_length) int64 array of the canonical responses."""
    return np.array([encode(response_text(a, b, digits)) for a, b in pairs], dtype=np.int64)
