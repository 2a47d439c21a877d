"""resrl.torch.capture_hidden and response_states on small decoders built
here: the recorded tensor is the input of the last block computed by hand,
detached, recorded once per forward even when gradient checkpointing runs the
block again during backward; response_states picks the positions that
predict the response tokens."""

import pytest

torch = pytest.importorskip("torch")

import torch.utils.checkpoint  # noqa: E402

import resrl.torch  # noqa: E402

VOCAB, FEATURES, BLOCKS = 13, 16, 3


class Block(torch.nn.Module):
    """A pre-norm residual block taking the hidden states first, as Hugging
    Face decoder layers do."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(FEATURES)
        self.mlp = torch.nn.Linear(FEATURES, FEATURES)

    def forward(self, hidden, attention_mask=None):
        return hidden + torch.tanh(self.mlp(self.norm(hidden)))


class Decoder(torch.nn.Module):
    """Embedding, blocks in `layers`, final norm; `checkpointing` runs every
    block under torch.utils.checkpoint in training mode."""

    def __init__(self, checkpointing=None):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, FEATURES)
        self.layers = torch.nn.ModuleList(Block() for _ in range(BLOCKS))
        self.norm = torch.nn.LayerNorm(FEATURES)
        self.checkpointing = checkpointing  # None, or use_reentrant

    def forward(self, ids):
        hidden = self.embed(ids)
        for block in self.layers:
            if self.checkpointing is not None and self.training:
                hidden = torch.utils.checkpoint.checkpoint(block, hidden, use_reentrant=self.checkpointing)
            else:
                hidden = block(hidden)
        return self.norm(hidden)


class CausalLM(torch.nn.Module):
    """The Hugging Face layout: model.model.layers, model.lm_head."""

    def __init__(self, checkpointing=None):
        super().__init__()
        self.model = Decoder(checkpointing)
        self.lm_head = torch.nn.Linear(FEATURES, VOCAB)

    def forward(self, ids):
        return self.lm_head(self.model(ids))


class Gpt2Style(torch.nn.Module):
    """GPT-2's layout: model.transformer.h."""

    def __init__(self):
        super().__init__()
        self.transformer = torch.nn.Module()
        self.transformer.h = torch.nn.ModuleList(Block() for _ in range(BLOCKS))

    def forward(self, hidden):
        for block in self.transformer.h:
            hidden = block(hidden)
        return hidden


def last_block_input(decoder, ids):
    """The input of the last block, computed by hand."""
    with torch.no_grad():
        hidden = decoder.embed(ids)
        for block in decoder.layers[:-1]:
            hidden = block(hidden)
    return hidden


@pytest.fixture
def ids():
    torch.manual_seed(0)
    return torch.randint(0, VOCAB, (3, 9))


def test_records_the_input_of_the_last_block_detached(ids):
    torch.manual_seed(1)
    model = CausalLM()
    with resrl.torch.capture_hidden(model) as capture:
        logits = model(ids)
    assert logits.requires_grad
    assert len(capture.states) == 1
    assert not capture.hidden.requires_grad and capture.hidden.grad_fn is None
    assert torch.equal(capture.hidden, last_block_input(model.model, ids))
    assert capture.hidden.shape == (3, 9, FEATURES)


def test_hooks_are_removed_and_every_forward_is_recorded(ids):
    torch.manual_seed(2)
    model = CausalLM()
    with resrl.torch.capture_hidden(model) as capture:
        model(ids)
        model(ids[:2, :5])
    assert [state.shape[:2] for state in capture.states] == [(3, 9), (2, 5)]
    assert torch.equal(capture.hidden, last_block_input(model.model, ids[:2, :5]))
    assert not model._forward_pre_hooks and not model.model.layers[-1]._forward_pre_hooks
    model(ids)  # outside the block: nothing recorded
    assert len(capture.states) == 2
    capture.clear()
    with pytest.raises(RuntimeError, match="nothing recorded"):
        capture.hidden


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_recorded_once_under_gradient_checkpointing(ids, use_reentrant):
    torch.manual_seed(3)
    model = CausalLM(checkpointing=use_reentrant).train()
    last = model.model.layers[-1]
    calls = []
    counter = last.register_forward_pre_hook(lambda module, args: calls.append(1))
    with resrl.torch.capture_hidden(model) as capture:
        model(ids).logsumexp(-1).sum().backward()
    counter.remove()
    assert len(calls) == 2  # the forward and checkpointing's recomputation in backward
    assert len(capture.states) == 1
    assert not capture.hidden.requires_grad
    assert torch.equal(capture.hidden, last_block_input(model.model, ids))
    assert model.lm_head.weight.grad is not None


def test_finds_gpt2_blocks_and_takes_a_named_layer():
    torch.manual_seed(4)
    model = Gpt2Style()
    states = torch.randn(2, 5, FEATURES)
    with resrl.torch.capture_hidden(model) as capture:
        model(states)
    want = model.transformer.h[1](model.transformer.h[0](states)).detach()
    assert torch.equal(capture.hidden, want)
    with resrl.torch.capture_hidden(model, layer=model.transformer.h[1]) as capture:
        model(states)
    assert torch.equal(capture.hidden, model.transformer.h[0](states).detach())


def test_without_a_block_list_asks_for_the_layer():
    with pytest.raises(ValueError, match="pass layer="):
        with resrl.torch.capture_hidden(torch.nn.Linear(2, 2)):
            pass


def test_response_states_are_the_positions_predicting_the_response():
    prompt, response = 4, 3  # sequence: 4 prompt tokens (left-padded), then 3 response tokens
    length = prompt + response
    positions = torch.arange(length, dtype=torch.float32)
    hidden = positions[None, :, None].expand(2, length, 5)  # the state at position i holds i
    aligned = resrl.torch.response_states(hidden, response)
    assert aligned.shape == (2, response, 5)
    # Response token j sits at position prompt + j; the state at prompt + j - 1 predicts it.
    for j in range(response):
        assert torch.all(aligned[:, j] == prompt + j - 1)
    assert aligned.data_ptr() == hidden[:, prompt - 1].data_ptr()  # a view
    for bad in (0, length):
        with pytest.raises(ValueError, match="response_length"):
            resrl.torch.response_states(hidden, bad)


def test_response_states_match_next_token_logits(ids):
    """The aligned states give the logits that score the response tokens,
    as verl slices them (logits[:, -R - 1 : -1])."""
    torch.manual_seed(5)
    model = CausalLM().eval()
    response = 4
    with torch.no_grad(), resrl.torch.capture_hidden(model) as capture:
        logits = model(ids)
    last = model.model.layers[-1]
    with torch.no_grad():
        from_states = model.lm_head(model.model.norm(last(resrl.torch.response_states(capture.hidden, response))))
    torch.testing.assert_close(from_states, logits[:, -response - 1 : -1])
