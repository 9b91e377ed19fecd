"""Encoders and loss: causality, padding, initial loss, chunked cross-entropy."""

import math

import pytest
import torch
import torch.nn.functional as F

from seqrec_cli.config.schema import EncoderConfig, ModelConfig
from seqrec_cli.training.losses import chunked_cross_entropy, full_cross_entropy
from seqrec_cli.models import build

ENCODERS = ["attention", "gru", "lstm", "gru_attention"]


def make(name, *, n_items=50, dim=16, max_len=8, layers=2, pre_norm=True, block="sasrec"):
    torch.manual_seed(0)
    encoder = EncoderConfig(name=name, num_layers=layers, num_heads=2, pre_norm=pre_norm, block=block)
    model = build(ModelConfig(embedding_dim=dim, max_len=max_len), encoder, n_items)
    return model.eval()


# The attention encoder three times: pre-LN (default), post-LN (SASRec's original layout) and
# eSASRec's gated LiGR block.
VARIANTS = [(name, True, "sasrec") for name in ENCODERS] + [("attention", False, "sasrec"), ("attention", True, "ligr")]


@pytest.mark.parametrize("name, pre_norm, block", VARIANTS)
def test_changing_a_future_item_never_changes_an_earlier_output(name, pre_norm, block):
    model = make(name, pre_norm=pre_norm, block=block)
    x = torch.tensor([[3, 7, 9, 11, 4, 2, 8, 5]])
    n = torch.tensor([8])
    base = model(x, n)
    x2 = x.clone()
    x2[0, 5] = 40
    changed = model(x2, n)
    assert torch.allclose(base[0, :5], changed[0, :5], atol=1e-6)
    assert not torch.allclose(base[0, 5:], changed[0, 5:])


@pytest.mark.parametrize("name, pre_norm, block", VARIANTS)
def test_padding_never_changes_a_real_position(name, pre_norm, block):
    model = make(name, pre_norm=pre_norm, block=block)
    short = torch.tensor([[3, 7, 9, 0, 0, 0, 0, 0]])
    garbage = torch.tensor([[3, 7, 9, 12, 30, 1, 6, 2]])
    n = torch.tensor([3])
    a = model(short, n)[0, :3]
    b = model(garbage, n)[0, :3]  # same length: positions after 3 are padding, whatever they hold
    c = model(short[:, :3], n)[0, :3]  # the same row with the trailing padding cut off
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)


@pytest.mark.parametrize("name, pre_norm, block", VARIANTS)
@pytest.mark.parametrize("layers", [1, 2])
def test_last_hidden_equals_the_full_forward_at_each_rows_last_item(name, pre_norm, block, layers):
    """Evaluation's shortcut (only the last position through the final block) computes the same
    state as a training forward pass, for rows of every length, at any input width."""
    model = make(name, pre_norm=pre_norm, layers=layers, max_len=12, block=block)
    torch.manual_seed(2)
    lengths = torch.tensor([1, 2, 5, 12, 7, 3])
    x = torch.randint(1, 51, (6, 12)) * (torch.arange(12)[None, :] < lengths[:, None])
    full = model(x, lengths)[torch.arange(6), lengths - 1]
    assert torch.allclose(model.last_hidden(x, lengths), full, atol=1e-5)
    short = lengths[:3]  # rows of length <= 5 cut to width 5, as evaluation's width groups do
    assert torch.allclose(model.last_hidden(x[:3, :5], short), full[:3], atol=1e-5)


@pytest.mark.parametrize("name", ENCODERS)
def test_initial_loss_is_close_to_log_n_items(name):
    n_items = 1000
    model = make(name, n_items=n_items, dim=64, max_len=20)
    torch.manual_seed(1)
    x = torch.randint(1, n_items + 1, (32, 20))
    y = torch.randint(1, n_items + 1, (32, 20))
    h = model(x, torch.full((32,), 20))
    loss = full_cross_entropy(model, h.reshape(-1, 64), y.reshape(-1)).item()
    assert abs(loss - math.log(n_items)) < 0.1 * math.log(n_items)


def test_chunked_cross_entropy_matches_autograd():
    torch.manual_seed(0)
    h = torch.randn(37, 8, requires_grad=True)
    w = torch.randn(11, 8, requires_grad=True)
    t = torch.randint(0, 11, (37,))
    F.cross_entropy(h @ w.T, t).backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    import seqrec_cli.training.losses as losses

    old = losses.CPU_CHUNK_ELEMENTS
    losses.CPU_CHUNK_ELEMENTS = 5 * 11  # force several chunks, the last one partial
    try:
        loss = chunked_cross_entropy(h, w, t)
        (loss * 3).backward()
    finally:
        losses.CPU_CHUNK_ELEMENTS = old
    assert loss.item() == pytest.approx(F.cross_entropy(h @ w.T, t).item(), rel=1e-6)
    assert torch.allclose(h.grad, 3 * gh, atol=1e-6) and torch.allclose(w.grad, 3 * gw, atol=1e-6)


def test_padding_embedding_stays_zero_and_is_never_scored():
    model = make("gru")
    assert torch.count_nonzero(model.item_embedding.weight[0]) == 0
    assert model.scores(torch.zeros(2, 16)).shape == (2, 50)
