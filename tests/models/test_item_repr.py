"""Item representations from features: every encoder and loss, cold items, and the default
(id-only) model left exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqrec_cli import models
from seqrec_cli.config.schema import EncoderConfig, LossConfig, ModelConfig
from seqrec_cli.training.losses import build_loss

from feature_support import catalogue

N_ITEMS = 30
ENCODERS = ("attention", "gru", "lstm", "gru_attention")

# The id-only default model as it was before item features (computed with main at 97b7696):
# sum of every parameter and buffer, sum and absolute sum of the scores of two fixed rows.
# The parameters come from the seeded initialisation and must match exactly; the scores go through
# the CPU's matrix kernels, whose summation order differs between processors (an AMD EPYC and an
# Intel Xeon disagree in the 8th digit), so they are compared to float32 precision.
BEFORE = {
    "attention": (28, 82.66554897095193, 0.0012094276025891304, 4.595184170641005),
    "gru": (9, -4.009151233245575, -0.012984755321667762, 0.32441095537433284),
    "lstm": (9, -10.900213563056695, -0.09594669866783079, 0.35913619051279966),
    "gru_attention": (15, -10.472794419444199, -0.07596355451096315, 0.4958896999742137),
}


def _encoder(name: str) -> EncoderConfig:
    return EncoderConfig(name=name, num_heads=1 if name == "gru" else 2)


@pytest.mark.parametrize("name", ENCODERS)
def test_default_model_is_unchanged(name):
    torch.manual_seed(0)
    m = models.build(ModelConfig(max_len=8, embedding_dim=16), _encoder(name), N_ITEMS).eval()
    items, lengths = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7]]), torch.tensor([3, 4])
    with torch.no_grad():
        scores = m.scores(m.last_hidden(items, lengths)).double()
    state = m.state_dict()
    assert m.item_repr is None
    n_state, param_sum, score_sum, score_abs = BEFORE[name]
    assert len(state) == n_state
    assert float(sum(p.double().sum() for p in state.values())) == param_sum
    assert float(scores.sum()) == pytest.approx(score_sum, rel=1e-5, abs=1e-6)
    assert float(scores.abs().sum()) == pytest.approx(score_abs, rel=1e-5)


def featured(name: str, repr_: str = "id+features", counts=None, **model) -> models.SequentialRecommender:
    torch.manual_seed(0)
    f = catalogue()
    m = models.build(
        ModelConfig(max_len=8, embedding_dim=16, item_repr=repr_, **model),
        _encoder(name),
        N_ITEMS,
        0,
        feature_meta=f.meta,
    )
    m.item_repr.set_catalogue(f, counts)
    return m


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("loss", ["ce", "sampled_softmax", "bce", "gbce", "bpr"])
def test_every_encoder_and_loss_trains_the_feature_path(name, loss):
    counts = np.ones(N_ITEMS + 1, dtype=np.int64)
    counts[0] = 0
    m = featured(name, counts=counts)
    loss_fn = build_loss(LossConfig(name=loss, n_negatives=4), counts, only_trained=True)
    items, lengths = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]]), torch.tensor([4, 3])
    targets = torch.tensor([2, 3, 4, 5, 6, 7, 8])
    hidden = m(items, lengths)
    real = torch.cat([hidden[0, :4], hidden[1, :3]])
    value = loss_fn(m, real, targets)
    value.backward()
    assert torch.isfinite(value)
    for param in (m.item_repr.categorical[0].weight, m.item_repr.multi[0].weight, m.item_repr.numeric.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0


def test_items_without_training_events_are_scored_from_features_alone():
    counts = np.ones(N_ITEMS + 1, dtype=np.int64)
    counts[[0, 5, 9]] = 0  # items 5 and 9 never trained on
    m = featured("gru", counts=counts)
    table = m.item_table()
    assert torch.equal(table[0], torch.zeros(16))
    assert m.item_repr.id_known[[5, 9]].tolist() == [0.0, 0.0]
    assert 5 not in m.item_repr.softmax_items.tolist() and 9 not in m.item_repr.softmax_items.tolist()
    # The id row of an untrained item gets no gradient from the full softmax.
    hidden = torch.randn(3, 16)
    build_loss(LossConfig(name="ce"))(m, hidden, torch.tensor([1, 2, 3])).backward()
    assert m.item_embedding.weight.grad[[5, 9]].abs().sum() == 0
    assert m.item_embedding.weight.grad[[1, 2]].abs().sum() > 0


def test_new_items_match_the_catalogue_rows_of_the_same_features():
    m = featured("attention", "features").eval()
    new = m.item_repr.new_items(catalogue())
    torch.testing.assert_close(new, m.item_table()[1:])


def test_precomputed_items_give_the_same_scores_and_id_dropout_only_trains():
    m = featured("attention", id_dropout=0.5)
    m.eval()
    items, lengths = torch.tensor([[1, 2, 3, 0]]), torch.tensor([3])
    with torch.no_grad():
        plain = m.scores(m.last_hidden(items, lengths))
        with m.precomputed_items():
            cached = m.scores(m.last_hidden(items, lengths))
            assert m._frozen_items is not None
    assert m._frozen_items is None
    assert torch.equal(plain, cached)
    assert torch.equal(m.item_table(), m.item_table())  # eval: no dropout
    m.train()
    assert not torch.equal(m.item_table(), m.item_table())  # training: a fresh draw each step


def test_concat_combination_has_the_model_width():
    torch.manual_seed(0)
    f = catalogue()
    cfg = ModelConfig(max_len=8, embedding_dim=16, item_features=True, feature_combine="concat")
    m = models.build(cfg, _encoder("gru"), N_ITEMS, 0, feature_meta=f.meta)
    m.item_repr.set_catalogue(f, None)
    assert m.item_table().shape == (N_ITEMS + 1, 16)
    assert m.item_repr.project is not None
