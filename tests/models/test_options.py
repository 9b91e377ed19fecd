"""The options of issue 4: time-gap features, the GRU + attention encoder, user vectors."""

import numpy as np
import pytest
import torch

from seqrec_cli.config.schema import EncoderConfig, ModelConfig
from seqrec_cli.data.batches import SideInputs, gap_buckets, has_training_rows, training_examples, user_rows
from seqrec_cli.data.preprocess import Interactions
from seqrec_cli.errors import UserError
from seqrec_cli.models import build


def interactions(times):
    """Two users: [100, 100, 101, 108] and [5, 1029] (items 1..6)."""
    offsets = np.array([0, 4, 6])
    return Interactions(
        offsets=offsets,
        items=np.array([1, 2, 3, 4, 5, 6], dtype=np.int32),
        times=None if times is None else np.array(times),
        user_ids=np.array([10, 20]),
        item_ids=np.arange(1, 7),
    )


def test_gap_buckets_by_hand():
    data = interactions([100, 100, 101, 108, 5, 1029])
    # first event -> 1; gap g -> 2 + floor(log2(1 + g)): 0 -> 2, 1 -> 3, 7 -> 5; 1024 -> 2 + 10 = 12
    assert gap_buckets(data).tolist() == [1, 2, 3, 5, 1, 12]


def test_gap_buckets_without_timestamps_is_a_user_error():
    with pytest.raises(UserError, match="needs timestamps"):
        gap_buckets(interactions(None))


def test_user_rows_number_trained_users_and_give_the_others_zero():
    assert user_rows(np.array([True, False, True, True])).tolist() == [1, 0, 2, 3]
    data = interactions([1, 2, 3, 4, 5, 6])
    # leave-one-out training parts: user 10 has 2 events (trainable), user 20 none
    assert has_training_rows(data, np.array([2, 4])).tolist() == [True, False]


def test_training_rows_carry_gaps_aligned_with_items_and_their_user_row():
    data = interactions([100, 100, 101, 108, 5, 1029])
    side = SideInputs(gaps=gap_buckets(data), user_rows=np.array([1, 2]))
    ex = training_examples(data, np.array([4, 6]), max_len=5, all_windows=True, side=side)
    assert ex.inputs.tolist() == [[1, 2, 3, 0, 0], [5, 0, 0, 0, 0]]
    assert ex.gaps.tolist() == [[1, 2, 3, 0, 0], [1, 0, 0, 0, 0]]
    assert ex.users.tolist() == [1, 2]


ENCODERS = ["attention", "gru", "lstm", "gru_attention"]


def make(name, gaps=True, users=0, dim=16, max_len=8):
    torch.manual_seed(0)
    model = build(
        ModelConfig(embedding_dim=dim, max_len=max_len, user_embedding=users > 0),
        EncoderConfig(name=name, num_layers=2, num_heads=2, time_features="gap" if gaps else "none"),
        50,
        users,
    )
    return model.eval()


@pytest.mark.parametrize("name", ENCODERS)
def test_a_future_time_gap_never_changes_an_earlier_output(name):
    model = make(name)
    x = torch.tensor([[3, 7, 9, 11, 4, 2, 8, 5]])
    g = torch.tensor([[1, 4, 4, 9, 2, 3, 20, 7]])
    n = torch.tensor([8])
    base = model(x, n, g)
    g2 = g.clone()
    g2[0, 5] = 30
    changed = model(x, n, g2)
    assert torch.allclose(base[0, :5], changed[0, :5], atol=1e-6)
    assert not torch.allclose(base[0, 5:], changed[0, 5:])


@pytest.mark.parametrize("name", ENCODERS)
def test_gaps_of_padding_never_change_a_real_position(name):
    model = make(name)
    x = torch.tensor([[3, 7, 9, 0, 0, 0, 0, 0]])
    n = torch.tensor([3])
    a = model(x, n, torch.tensor([[1, 5, 6, 0, 0, 0, 0, 0]]))[0, :3]
    b = model(x, n, torch.tensor([[1, 5, 6, 9, 9, 2, 3, 4]]))[0, :3]
    assert torch.allclose(a, b, atol=1e-6)


def test_time_gaps_change_the_output():
    model = make("attention")
    x, n = torch.tensor([[3, 7, 9]]), torch.tensor([3])
    assert not torch.allclose(model(x, n, torch.tensor([[1, 2, 2]])), model(x, n, torch.tensor([[1, 20, 20]])))


def test_a_gap_model_refuses_to_run_without_gaps():
    with pytest.raises(ValueError, match="gaps"):
        make("gru")(torch.tensor([[1, 2]]), torch.tensor([2]))


@pytest.mark.parametrize("name", ["attention", "gru_attention"])
def test_user_vector_is_added_before_scoring_and_row_zero_means_sequence_alone(name):
    model = make(name, gaps=False, users=4)
    torch.nn.init.normal_(model.user_embedding.weight[1:], std=0.5)
    x, n = torch.tensor([[3, 7, 9], [4, 5, 6]]), torch.tensor([3, 3])
    alone = model(x, n)
    with_rows = model(x, n, users=torch.tensor([0, 2]))
    assert torch.equal(with_rows[0], alone[0])  # row 0: unseen user, the sequence alone
    assert torch.allclose(with_rows[1], alone[1] + model.user_embedding.weight[2], atol=1e-6)


def test_user_vectors_and_gap_table_start_small_with_zero_padding_rows():
    model = make("gru", gaps=True, users=5)
    for table in (model.gap_embedding, model.user_embedding):
        assert torch.count_nonzero(table.weight[0]) == 0
        assert table.weight[1:].std() < 0.05
