"""Sampled losses on cases small enough to compute by hand, and the sampling contract."""

import math

import numpy as np
import pytest
import torch

from seqrec_cli.config.schema import LossConfig
from seqrec_cli.training.sampled_losses import (
    bce_from_scores,
    bpr_from_scores,
    build_sampled_loss,
    gbce_beta,
    sampled_softmax_from_scores,
    sampling_distribution,
)


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


T = torch.tensor
NO_HIT = T([[False, False]])


def test_bce_by_hand():
    loss = bce_from_scores(T([2.0]), T([[1.0, -1.0]]), NO_HIT)
    assert loss.item() == pytest.approx(-math.log(sig(2)) - math.log(1 - sig(1)) - math.log(1 - sig(-1)), rel=1e-6)


def test_gbce_scales_only_the_positive_term():
    loss = bce_from_scores(T([2.0]), T([[1.0, -1.0]]), NO_HIT, beta=0.5)
    assert loss.item() == pytest.approx(
        -0.5 * math.log(sig(2)) - math.log(1 - sig(1)) - math.log(1 - sig(-1)), rel=1e-6
    )
    # t = 0 is plain BCE; t = 1 gives beta = alpha = k / (n - 1)
    assert gbce_beta(256, 1001, 0.0) == pytest.approx(1.0)
    assert gbce_beta(256, 1001, 1.0) == pytest.approx(256 / 1000)


def test_bpr_by_hand():
    loss = bpr_from_scores(T([2.0]), T([[1.0, 3.0]]), NO_HIT)
    assert loss.item() == pytest.approx((-math.log(sig(1)) - math.log(sig(-1))) / 2, rel=1e-6)


def test_sampled_softmax_by_hand_with_logq():
    log_q_pos, log_q_neg = T([math.log(0.5)]), T([[math.log(0.25), math.log(0.25)]])
    loss = sampled_softmax_from_scores(T([2.0]), T([[1.0, 0.0]]), NO_HIT, log_q_pos, log_q_neg)
    a, b, c = 2 - math.log(0.5), 1 - math.log(0.25), 0 - math.log(0.25)
    assert loss.item() == pytest.approx(math.log(math.exp(a) + math.exp(b) + math.exp(c)) - a, rel=1e-6)


def test_accidental_hits_never_count_as_negatives():
    hit = T([[True, False]])
    assert bce_from_scores(T([2.0]), T([[5.0, -1.0]]), hit).item() == pytest.approx(
        -math.log(sig(2)) - math.log(1 - sig(-1)), rel=1e-6
    )
    assert bpr_from_scores(T([2.0]), T([[5.0, 1.0]]), hit).item() == pytest.approx(-math.log(sig(1)), rel=1e-6)
    zero = T([[0.0, 0.0]])
    assert sampled_softmax_from_scores(T([2.0]), T([[5.0, 1.0]]), hit, T([0.0]), zero).item() == pytest.approx(
        math.log(math.exp(2) + math.exp(1)) - 2, rel=1e-6
    )


def test_popularity_sampling_follows_counts():
    counts = np.array([0, 1, 3, 0, 4])
    probs = sampling_distribution(LossConfig(name="bce", sampling="popularity"), counts)
    assert probs.tolist()[:2] == pytest.approx([0.125, 0.375]) and probs[2] < 1e-9
    assert sampling_distribution(LossConfig(name="bce"), counts).tolist() == pytest.approx([0.25] * 4)


@pytest.mark.parametrize("name", ["sampled_softmax", "bce", "gbce", "bpr"])
def test_sampled_losses_train_and_give_gradients(name):
    torch.manual_seed(0)
    weight = torch.randn(21, 8, requires_grad=True)
    hidden = torch.randn(30, 8, requires_grad=True)
    targets = torch.randint(1, 21, (30,))
    loss = build_sampled_loss(LossConfig(name=name, n_negatives=5), np.ones(21))(weight, hidden, targets)
    loss.backward()
    assert torch.isfinite(loss) and hidden.grad.abs().sum() > 0 and weight.grad.abs().sum() > 0


@pytest.mark.parametrize("share", [True, False])
def test_sampled_softmax_draws_shared_or_per_position_negatives(share):
    """share_negatives=true: one draw of k items for the batch; false: k items per position (as
    eSASRec draws them). Either way the loss is sampled_softmax_from_scores of those draws."""
    torch.manual_seed(0)
    n, k, n_items = 6, 4, 20
    weight, hidden = torch.randn(n_items + 1, 8), torch.randn(n, 8)
    targets = torch.randint(1, n_items + 1, (n,))
    counts = np.arange(n_items + 1, dtype=np.float64)  # popularity: unequal logQ per item
    cfg = LossConfig(name="sampled_softmax", n_negatives=k, sampling="popularity", share_negatives=share)
    loss = build_sampled_loss(cfg, counts, torch.Generator().manual_seed(7))(weight, hidden, targets)
    probs = sampling_distribution(cfg, counts)
    drawn = (
        torch.multinomial(probs, k if share else n * k, replacement=True, generator=torch.Generator().manual_seed(7))
        + 1
    )
    negatives = drawn.expand(n, k) if share else drawn.view(n, k)
    assert share or len({tuple(row.tolist()) for row in negatives}) > 1  # rows get their own negatives
    neg = torch.einsum("nd,nkd->nk", hidden, weight[negatives])
    log_q = torch.log(probs)
    expected = sampled_softmax_from_scores(
        (hidden * weight[targets]).sum(1), neg, negatives == targets[:, None], log_q[targets - 1], log_q[negatives - 1]
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
