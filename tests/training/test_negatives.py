"""In-batch and mixed negatives (training/negatives.py) and GRU4Rec's losses
(training/gru4rec_losses.py), each against a loss assembled by hand in float64."""

import math

import numpy as np
import pytest
import torch

from seqrec_cli.config.schema import LossConfig
from seqrec_cli.training.gru4rec_losses import bpr_max_from_scores, top1_max_from_scores
from seqrec_cli.training.negatives import NegativeSampler, sampling_distribution, target_frequency
from seqrec_cli.training.sampled_losses import build_sampled_loss

# Item 1 is the most frequent target; item 5 is never one (its frequency floor is tiny).
COUNTS = np.array([0, 6, 3, 2, 1, 0], dtype=np.float64)
N_ITEMS = 5


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def batch(seed=0, n=6, dim=4):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(N_ITEMS + 1, dim, generator=g, dtype=torch.float64)
    hidden = torch.randn(n, dim, generator=g, dtype=torch.float64)
    targets = torch.tensor([1, 2, 1, 3, 4, 1])[:n]  # repeated targets: accidental in-batch hits
    return weight, hidden, targets


def softmax_by_hand(pos, pos_logq, columns):
    """-log softmax of [pos - logq(pos), score_j - logq_j for the non-hit columns][0]."""
    logits = [pos - pos_logq] + [s - q for s, q in columns]
    top = max(logits)
    return math.log(sum(math.exp(v - top) for v in logits)) + top - logits[0]


def test_in_batch_sampled_softmax_with_logq_equals_the_loss_assembled_by_hand():
    weight, hidden, targets = batch()
    cfg = LossConfig(name="sampled_softmax", sampling="in_batch", logq_correction=True)
    loss = build_sampled_loss(cfg, COUNTS)(weight.float(), hidden.float(), targets)
    freq = COUNTS[1:] / COUNTS[1:].sum()  # an item is in the batch as often as it is a target
    t = targets.tolist()
    per_row = []
    for i in range(len(t)):
        score = lambda j: float(hidden[i] @ weight[t[j]])  # noqa: E731
        columns = [(score(j), math.log(freq[t[j] - 1])) for j in range(len(t)) if t[j] != t[i]]
        per_row.append(softmax_by_hand(float(hidden[i] @ weight[t[i]]), math.log(freq[t[i] - 1]), columns))
    assert loss.item() == pytest.approx(sum(per_row) / len(per_row), rel=1e-5)
    uncorrected = build_sampled_loss(
        LossConfig(name="sampled_softmax", sampling="in_batch", logq_correction=False), COUNTS
    )
    assert uncorrected(weight.float(), hidden.float(), targets).item() != pytest.approx(loss.item(), rel=1e-3)


def test_mixed_negatives_are_the_batch_targets_plus_draws_and_skip_accidental_hits():
    weight, hidden, targets = batch(1)
    k = 8
    cfg = LossConfig(name="sampled_softmax", sampling="mixed", n_negatives=k, popularity_alpha=0.5)
    loss = build_sampled_loss(cfg, COUNTS, torch.Generator().manual_seed(3))(weight.float(), hidden.float(), targets)
    probs = (COUNTS[1:] ** 0.5) / (COUNTS[1:] ** 0.5).sum()
    drawn = (
        torch.multinomial(sampling_distribution(cfg, COUNTS), k, True, generator=torch.Generator().manual_seed(3)) + 1
    ).tolist()
    t = targets.tolist()
    assert set(drawn) & set(t)  # some draws equal a row's positive: the masking is exercised
    freq = COUNTS[1:] / COUNTS[1:].sum()
    per_row = []
    for i in range(len(t)):
        score = lambda item: float(hidden[i] @ weight[item])  # noqa: E731
        columns = [(score(t[j]), math.log(freq[t[j] - 1])) for j in range(len(t)) if t[j] != t[i]]
        columns += [(score(d), math.log(probs[d - 1])) for d in drawn if d != t[i]]
        per_row.append(softmax_by_hand(score(t[i]), math.log(freq[t[i] - 1]), columns))
    assert loss.item() == pytest.approx(sum(per_row) / len(per_row), rel=1e-5)


def test_sampler_modes_give_their_columns_and_log_probabilities():
    targets = torch.tensor([1, 2, 2])
    in_batch = NegativeSampler(LossConfig(sampling="in_batch"), COUNTS)(targets, per_row=True)
    assert in_batch.shared and in_batch.items.tolist() == [1, 2, 2]
    assert torch.allclose(in_batch.log_q, torch.log(target_frequency(COUNTS))[targets - 1])
    drawn = NegativeSampler(LossConfig(sampling="uniform", n_negatives=4), COUNTS)(targets, per_row=True)
    assert drawn.items.shape == (3, 4) and torch.allclose(drawn.log_q, torch.full((3, 4), math.log(0.2)))
    mixed = NegativeSampler(LossConfig(sampling="mixed", n_negatives=4, popularity_alpha=0.0), COUNTS)(targets, True)
    assert mixed.items.shape == (7,) and mixed.items[:3].tolist() == [1, 2, 2]
    assert torch.allclose(mixed.log_q[3:], torch.full((4,), math.log(0.2)))  # alpha 0: uniform extras


def test_bpr_max_and_top1_max_by_hand():
    pos = torch.tensor([2.0, 0.5])
    neg = torch.tensor([[1.0, 3.0, 0.5], [0.0, -1.0, 2.0]])
    hit = torch.tensor([[False, False, True], [False, False, False]])
    s0 = [math.exp(1) / (math.exp(1) + math.exp(3)), math.exp(3) / (math.exp(1) + math.exp(3))]
    z1 = math.exp(0) + math.exp(-1) + math.exp(2)
    s1 = [math.exp(0) / z1, math.exp(-1) / z1, math.exp(2) / z1]
    rows = [(2.0, [1.0, 3.0], s0), (0.5, [0.0, -1.0, 2.0], s1)]
    bpr = [
        -math.log(sum(s * sig(p - r) for s, r in zip(w, ns))) + 0.7 * sum(s * r * r for s, r in zip(w, ns))
        for p, ns, w in rows
    ]
    top1 = [sum(s * (sig(r - p) + sig(r * r)) for s, r in zip(w, ns)) for p, ns, w in rows]
    assert bpr_max_from_scores(pos, neg, hit, 0.7).item() == pytest.approx(sum(bpr) / 2, rel=1e-5)
    assert top1_max_from_scores(pos, neg, hit).item() == pytest.approx(sum(top1) / 2, rel=1e-5)


def test_a_row_whose_negatives_are_all_hits_adds_nothing():
    pos, neg = torch.tensor([1.0, 1.0]), torch.tensor([[0.0, 2.0], [0.5, 0.5]])
    hit = torch.tensor([[False, False], [True, True]])
    alone = bpr_max_from_scores(pos[:1], neg[:1], hit[:1], 1.0)
    assert bpr_max_from_scores(pos, neg, hit, 1.0).item() == pytest.approx(alone.item())
    assert torch.isfinite(top1_max_from_scores(pos, neg, hit))


@pytest.mark.parametrize("name", ["bpr_max", "top1_max", "bce", "bpr", "sampled_softmax"])
@pytest.mark.parametrize("sampling", ["in_batch", "mixed"])
def test_every_sampled_loss_trains_on_batch_negatives(name, sampling):
    weight, hidden, targets = (x.float() if x.is_floating_point() else x for x in batch(2))
    weight.requires_grad_(True)
    hidden.requires_grad_(True)
    cfg = LossConfig(name=name, sampling=sampling, n_negatives=3, bpreg=1.0 if name == "bpr_max" else 0.0)
    loss = build_sampled_loss(cfg, COUNTS)(weight, hidden, targets)
    loss.backward()
    assert torch.isfinite(loss) and hidden.grad.abs().sum() > 0 and weight.grad.abs().sum() > 0


def test_bpr_max_through_the_sampler_equals_its_score_function_on_in_batch_scores():
    weight, hidden, targets = (x.float() if x.is_floating_point() else x for x in batch(4))
    loss = build_sampled_loss(LossConfig(name="bpr_max", sampling="in_batch", bpreg=0.5), COUNTS)(
        weight, hidden, targets
    )
    scores = hidden @ weight[targets].T
    hit = targets[None, :] == targets[:, None]
    expected = bpr_max_from_scores(scores.diagonal(), scores, hit, 0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_gru4rec_losses_share_their_drawn_negatives_across_the_batch():
    weight, hidden, targets = (x.float() if x.is_floating_point() else x for x in batch(5))
    cfg = LossConfig(name="top1_max", sampling="popularity", n_negatives=6, popularity_alpha=0.5)
    loss = build_sampled_loss(cfg, COUNTS, torch.Generator().manual_seed(9))(weight, hidden, targets)
    drawn = torch.multinomial(sampling_distribution(cfg, COUNTS), 6, True, generator=torch.Generator().manual_seed(9))
    drawn = drawn + 1  # one set of 6 for every row
    scores = hidden @ weight[drawn].T
    expected = top1_max_from_scores((hidden * weight[targets]).sum(1), scores, drawn[None, :] == targets[:, None])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
