"""A small decoder-only transformer (pre-LayerNorm blocks, learned absolute
positions, character vocabulary) with a key/value cache for sampling.

Its blocks are `model.layers` (a ModuleList), so resrl.torch.capture_hidden
finds the last one and records its input: the penultimate-layer states that
ResRL uses (Hugging Face's hidden_states[-2]).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x, cache=None):
        """x: (B, L, W). cache: None (whole sequences, causal) or a dict with
        the keys/values of earlier positions, extended in place (sampling)."""
        batch, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        total = k.shape[2]
        if length > 1:  # new positions see the cached ones and the earlier new ones
            causal = torch.ones(length, total, dtype=torch.bool, device=x.device).tril(total - length)
            scores = scores.masked_fill(~causal, float("-inf"))
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, width)
        x = x + self.proj(attended)
        return x + self.mlp(self.norm2(x))


class TinyDecoder(nn.Module):
    def __init__(self, vocab, width=64, heads=4, depth=3, max_length=64, bf16=True):
        super().__init__()
        self.bf16 = bf16
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Embedding(max_length, width)
        self.layers = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, ids, caches=None, start=0):
        """Logits (B, L, V) of ids (B, L) placed at positions start..start+L-1."""
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        x = self.embed(ids) + self.position(positions)
        # The blocks' matrix products in bf16 (fp32 weights, fp32 residual
        # stream): Debian's torch does fp32 products with the generic
        # reference BLAS, bf16 ones with oneDNN, about 15x faster end to end
        # here. The output head stays fp32 so log-probabilities are accurate.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16 and ids.device.type == "cpu"):
            for i, layer in enumerate(self.layers):
                x = layer(x, None if caches is None else caches[i])
        return self.head(self.norm(x.float()))

    @torch.no_grad()
    def sample(self, prompts, new_tokens, eos, generator=None, temperature=1.0):
        """Samples `new_tokens` tokens after each prompt (B, P) at the given
        temperature (0 = greedy). Returns the tokens (B, new_tokens), with
        `eos` repeated after a response's first eos, and the mean entropy
        (nats) of the sampling distributions of each response's real tokens,
        (B,) (real: up to and including the first eos)."""
        caches = [{} for _ in self.layers]
        logits = self(prompts, caches)[:, -1]
        done = torch.zeros(prompts.shape[0], dtype=torch.bool)
        tokens, entropy_sum, counts = [], torch.zeros(prompts.shape[0]), torch.zeros(prompts.shape[0])
        for step in range(new_tokens):
            logp = logits.float().log_softmax(-1)
            live = (~done).float()
            entropy_sum += live * -(logp.exp() * logp).sum(-1)
            counts += live
            if temperature == 0:
                token = logp.argmax(-1)
            else:
                token = torch.multinomial((logp / temperature).softmax(-1), 1, generator=generator).squeeze(1)
            token = torch.where(done, torch.full_like(token, eos), token)
            tokens.append(token)
            done |= token == eos
            if step + 1 < new_tokens:
                logits = self(token[:, None], caches, start=prompts.shape[1] + step)[:, -1]
        return torch.stack(tokens, 1), entropy_sum / counts.clamp(min=1)
