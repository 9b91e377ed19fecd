"""objective=masked (BERT4Rec): which positions are masked, bidirectional attention that really
sees the future (and never the padding), the mask appended at inference, batch independence;
and GRU4Rec's encoder options (one-hot input, embedding dropout)."""

import numpy as np
import pytest
import torch

from seqrec_cli.config.schema import EncoderConfig, ModelConfig
from seqrec_cli.data.batches import TrainingExamples
from seqrec_cli.evaluation import ranking
from seqrec_cli.models import build
from seqrec_cli.models.recommender import with_mask_appended
from seqrec_cli.training.masking import mask_batch, masked_rows

from data_support import synthetic_splits

N_ITEMS = 50


def bert(max_len=8, layers=2, seed=0, pre_norm=True):
    torch.manual_seed(seed)
    encoder = EncoderConfig(name="attention", num_layers=layers, num_heads=2, pre_norm=pre_norm)
    return build(ModelConfig(embedding_dim=16, max_len=max_len), encoder, N_ITEMS, objective="masked").eval()


def test_mask_batch_masks_real_positions_only_and_keeps_their_items_as_targets():
    torch.manual_seed(0)
    items = torch.randint(1, N_ITEMS + 1, (400, 20))
    lengths = torch.randint(1, 21, (400,))
    items = items * (torch.arange(20)[None, :] < lengths[:, None])
    inputs, targets = mask_batch(items, lengths, 0.3, N_ITEMS + 1)
    masked = inputs == N_ITEMS + 1
    real = torch.arange(20)[None, :] < lengths[:, None]
    assert not (masked & ~real).any()  # never padding
    assert torch.equal(targets[masked], items[masked]) and (targets[~masked] == 0).all()
    assert torch.equal(inputs[~masked], items[~masked])  # the rest is untouched
    assert masked.any(dim=1).all()  # every row trains
    share = masked.sum().item() / real.sum().item()
    assert 0.27 < share < 0.36  # ~mask_prob, plus the rows that had none drawn


def test_a_row_with_nothing_drawn_gets_its_last_item_masked():
    items = torch.tensor([[4, 5, 6, 0], [7, 8, 9, 10]])
    lengths = torch.tensor([3, 4])
    inputs, targets = mask_batch(items, lengths, 1e-12, 99)
    assert inputs.tolist() == [[4, 5, 99, 0], [7, 8, 9, 99]]
    assert targets.tolist() == [[0, 0, 6, 0], [0, 0, 0, 10]]


def test_masked_rows_end_with_the_last_training_item():
    inputs = np.array([[1, 2, 3, 0], [5, 6, 7, 8]])
    targets = np.array([[2, 3, 4, 0], [6, 7, 8, 9]])
    rows = masked_rows(TrainingExamples(inputs, targets, np.array([3, 4])))
    assert rows.inputs.tolist() == targets.tolist() and rows.targets is targets


def test_the_mask_is_appended_after_the_last_max_len_minus_one_items():
    items = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7], [8, 0, 0, 0]])
    lengths = torch.tensor([3, 4, 1])
    out, n = with_mask_appended(items, lengths, 99, 4)
    assert out.tolist() == [[1, 2, 3, 99], [5, 6, 7, 99], [8, 99, 0, 0]] and n.tolist() == [4, 4, 2]
    wide, n = with_mask_appended(items, lengths, 99, 5)  # wider than the batch: no item lost
    assert wide.tolist() == [[1, 2, 3, 99, 0], [4, 5, 6, 7, 99], [8, 99, 0, 0, 0]] and n.tolist() == [4, 5, 2]


@pytest.mark.parametrize("pre_norm", [True, False])
def test_bidirectional_attention_sees_a_later_item(pre_norm):
    model = bert(pre_norm=pre_norm)
    x, n = torch.tensor([[3, 7, 9, 11, 4, 2, 8, 5]]), torch.tensor([8])
    changed = x.clone()
    changed[0, 5] = 40
    assert not torch.allclose(model(x, n)[0, :5], model(changed, n)[0, :5])  # earlier positions move
    causal = build(ModelConfig(embedding_dim=16, max_len=8), EncoderConfig(num_heads=2), N_ITEMS).eval()
    assert torch.allclose(causal(x, n)[0, :5], causal(changed, n)[0, :5], atol=1e-6)  # the control


def test_bidirectional_attention_never_sees_padding():
    model = bert()
    short = torch.tensor([[3, 7, 51, 0, 0, 0, 0, 0]])  # 51: the mask token
    garbage = torch.tensor([[3, 7, 51, 12, 30, 1, 6, 2]])
    n = torch.tensor([3])
    a, b, c = model(short, n)[0, :3], model(garbage, n)[0, :3], model(short[:, :3], n)[0, :3]
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)


def test_inference_scores_the_next_item_from_an_appended_mask():
    """last_hidden of a history = the full forward at the mask put after it, at any batch width."""
    model = bert(max_len=6)
    history, n = torch.tensor([[5, 9, 2, 0, 0, 0]]), torch.tensor([3])
    with_mask = torch.tensor([[5, 9, 2, model.mask_id, 0, 0]])
    expected = model(with_mask, torch.tensor([4]))[0, 3]
    assert torch.allclose(model.last_hidden(history, n)[0], expected, atol=1e-5)
    assert torch.allclose(model.last_hidden(history[:, :3], n)[0], expected, atol=1e-5)
    long = torch.tensor([[1, 2, 3, 4, 5, 6]])  # a full window: its oldest item makes room
    cut = model(torch.tensor([[2, 3, 4, 5, 6, model.mask_id]]), torch.tensor([6]))[0, 5]
    assert torch.allclose(model.last_hidden(long, torch.tensor([6]))[0], cut, atol=1e-5)


def test_the_mask_token_is_learned_apart_from_the_scored_items():
    model = bert()
    assert model.mask_embedding is not None and model.mask_embedding.requires_grad
    assert model.scores(torch.zeros(2, 16)).shape == (2, N_ITEMS)  # never a candidate
    assert model.item_embedding.weight.shape[0] == N_ITEMS + 1


@pytest.fixture(scope="module")
def splits():
    return synthetic_splits(n_users=300, n_items=120, mean_length=15)


def test_a_masked_models_rows_get_the_same_numbers_in_any_eval_batch(splits):
    torch.manual_seed(0)
    model = build(ModelConfig(embedding_dim=64, max_len=10), EncoderConfig(), splits.data.n_items, objective="masked")
    model.eval()
    inputs = ranking.prepare(splits, splits.test, 10, True, torch.device("cpu"))
    scorer = ranking.model_scorer(model, amp=False)

    def queries(batch_size):
        return torch.cat([scorer.encode(inputs, rows) for rows in ranking.batch_slices(inputs.widths, batch_size)])

    reference = queries(4096)
    for batch_size in (1, 5):
        assert torch.equal(queries(batch_size), reference), batch_size
    results = [ranking.evaluate_model(model, inputs, bs, [1, 10], amp=False) for bs in (7, 4096)]
    assert results[0] == results[1]


@pytest.mark.parametrize("kind, gates", [("gru", 3), ("lstm", 4)])
def test_one_hot_input_reads_an_items_own_row_of_gate_inputs(kind, gates):
    torch.manual_seed(0)
    enc = EncoderConfig(name=kind, hidden_size=12, input="one_hot")
    model = build(ModelConfig(embedding_dim=8, max_len=5), enc, N_ITEMS).eval()
    rnn = model.encoder.rnn
    assert model.input_embedding.weight.shape == (N_ITEMS + 1, gates * 12)
    assert torch.equal(rnn.weight_ih_l0, torch.eye(gates * 12)) and not rnn.weight_ih_l0.requires_grad
    x, n = torch.tensor([[3, 4, 5]]), torch.tensor([3])
    before = model(x, n)
    with torch.no_grad():
        model.item_embedding.weight[3] += 1.0  # the output table alone: the input does not move
    assert torch.equal(model(x, n), before)
    with torch.no_grad():
        model.input_embedding.weight[3] += 1.0
    assert not torch.allclose(model(x, n), before)


def test_embedding_dropout_is_apart_from_the_hidden_dropout():
    enc = EncoderConfig(name="gru", dropout=0.1, embedding_dropout=0.6)
    model = build(ModelConfig(embedding_dim=8, max_len=5), enc, N_ITEMS)
    assert model.encoder.in_drop.p == 0.6 and model.encoder.out_drop.p == 0.1
    same = build(ModelConfig(embedding_dim=8, max_len=5), EncoderConfig(name="gru", dropout=0.1), N_ITEMS)
    assert same.encoder.in_drop.p == 0.1
    attention = build(ModelConfig(embedding_dim=8, max_len=5), EncoderConfig(embedding_dropout=0.4), N_ITEMS)
    assert attention.encoder.drop.p == 0.4
