"""The runs `benchmark.py quality` knows by name (its `--suite` tables) and the published numbers
they are shown beside (docs/REFERENCES.md). Kept apart from the runner so a new table is a data
change only."""

from __future__ import annotations

from dataclasses import dataclass

from cold_start_benchmark import cold_suites

# Published full-ranking, leave-one-out results (docs/REFERENCES.md). Sampled-metric numbers
# are not comparable and are deliberately absent.
PUBLISHED = {
    "amazon-beauty": [
        {
            "model": "SASRec as usually reported (BCE, 1 negative)",
            "hr@10": 0.0605,
            "ndcg@10": 0.0318,
            "source": "eSASRec paper, Reported",
        },
        {"model": "DuoRec", "hr@10": 0.0845, "ndcg@10": 0.0443, "source": "eSASRec paper"},
        {
            "model": "SASRec + sampled softmax (256 negatives)",
            "hr@10": 0.0921,
            "ndcg@10": 0.0531,
            "source": "eSASRec paper, Calculated",
        },
        {"model": "eSASRec", "hr@10": 0.0928, "ndcg@10": 0.0523, "source": "eSASRec paper"},
    ],
    "ml-1m": [
        {
            "model": "SASRec (BCE, 1 negative)",
            "hr@10": 0.2500,
            "ndcg@10": 0.1341,
            "source": "Klenitskiy & Vasilev, RecSys 2023",
        },
        {"model": "BERT4Rec", "hr@10": 0.2843, "ndcg@10": 0.1537, "source": "Klenitskiy & Vasilev, RecSys 2023"},
        {
            "model": "SASRec+ (full cross-entropy)",
            "hr@10": 0.3152,
            "ndcg@10": 0.1821,
            "source": "Klenitskiy & Vasilev, RecSys 2023",
        },
        {
            "model": "gSASRec (gBCE, 256 negatives)",
            "hr@10": 0.3003,
            "ndcg@10": 0.1726,
            "source": "Petrov & Macdonald, RecSys 2023",
        },
    ],
}


@dataclass
class Row:
    label: str
    overrides: list[str]
    dataset: str


# ML-100K: every encoder x {ce, sampled_softmax}, then each encoder option once (on the encoder
# and loss it is most often paired with). One seed for all; settings shared by every row.
ML100K_BASE = [
    "dataset=ml-100k",
    "model.embedding_dim=64",
    "model.max_len=50",
    "optimizer.lr=0.002",
    "trainer.batch_size=32",
    "trainer.max_epochs=80",
    "trainer.patience=10",
    "trainer.seed=42",
]


def with_overrides(base: list[str], changes: list[str]) -> list[str]:
    """`base` with the keys that `changes` set replaced by their new values (Hydra refuses a key twice)."""
    keys = {c.split("=", 1)[0] for c in changes}
    return [o for o in base if o.split("=", 1)[0] not in keys] + changes


# BERT4Rec on ML-100K: bidirectional attention and the masked objective (mask_prob 0.2, as BERT4Rec
# used on ML-1M), trained up to 400 epochs with patience 30 (the later ML100K_BASE values win).
BERT_ML100K = ["encoder=attention", "objective=masked", "objective.mask_prob=0.2"]
BERT_ML100K_TRAIN = ["trainer.max_epochs=400", "trainer.patience=30"]
# GRU4Rec's recipe: embedding dropout apart from (lower) hidden-state dropout (a 64-wide state: a
# 256-wide one was ~10x slower per epoch here under load),
# with CE or BPR-max (score regularisation; loss.popularity_alpha=0.5 is GRU4Rec's sample_alpha).
GRU4REC_ML100K = ["encoder=gru", "encoder.embedding_dropout=0.4", "encoder.dropout=0.1"]
SUITES = {
    "ml-100k": [
        *[
            Row(f"{enc} / {loss}", [*ML100K_BASE, f"encoder={enc}", f"loss={loss}"], "ml-100k")
            for enc in ("attention", "gru", "lstm")
            for loss in ("ce", "sampled_softmax")
        ],
        Row("gru_attention / ce", [*ML100K_BASE, "encoder=gru_attention", "loss=ce"], "ml-100k"),
        Row(
            "attention + time gaps / ce",
            [*ML100K_BASE, "encoder=attention", "loss=ce", "encoder.time_features=gap"],
            "ml-100k",
        ),
        Row(
            "attention + user vectors / ce",
            [*ML100K_BASE, "encoder=attention", "loss=ce", "model.user_embedding=true"],
            "ml-100k",
        ),
    ],
    # Issue 21 on ML-100K: BERT4Rec (masked objective; more epochs and patience, since it converges
    # far more slowly than the causal model), in-batch/mixed negatives, and GRU4Rec's recipe, beside
    # the causal attention and GRU rows of the same base settings.
    "ml-100k-bert": [
        Row("attention / ce", [*ML100K_BASE, "encoder=attention", "loss=ce"], "ml-100k"),
        Row(
            "attention / sampled_softmax mixed",
            [
                *ML100K_BASE,
                "encoder=attention",
                "loss=sampled_softmax",
                "loss.sampling=mixed",
                "loss.popularity_alpha=0",
            ],
            "ml-100k",
        ),
        *[
            Row(
                f"bert4rec / {loss}",
                [*with_overrides(ML100K_BASE, BERT_ML100K_TRAIN), *BERT_ML100K, f"loss={loss}"],
                "ml-100k",
            )
            for loss in ("ce", "sampled_softmax")
        ],
        Row("gru / ce", [*ML100K_BASE, "encoder=gru", "loss=ce"], "ml-100k"),
        Row("gru4rec / ce", [*ML100K_BASE, *GRU4REC_ML100K, "loss=ce"], "ml-100k"),
        # BPR-max over 256 negatives per position ~ count ** 0.5: on ML-100K the batch's ~1,600
        # positions outnumber the catalogue, and in-batch / mixed negatives made a step ~10x slower
        # than these (docs/RESULTS.md).
        Row(
            "gru4rec / bpr_max",
            [*ML100K_BASE, *GRU4REC_ML100K, "loss=bpr_max", "loss.sampling=popularity", "loss.n_negatives=256"],
            "ml-100k",
        ),
    ],
    # Amazon Beauty: the presets holding the settings measured best here. The recurrent runs
    # stopped with patience 10 (their presets keep the published 50).
    "beauty": [
        Row("sasrec_beauty_tuned", ["experiment=sasrec_beauty_tuned"], "amazon-beauty"),
        Row("gru_beauty", ["experiment=gru_beauty", "trainer.patience=10"], "amazon-beauty"),
        Row("lstm_beauty", ["experiment=lstm_beauty", "trainer.patience=10"], "amazon-beauty"),
    ],
    # Issue 21's presets on Amazon Beauty (not yet measured: about an hour or more each here).
    "beauty-bert": [
        Row("bert4rec_beauty", ["experiment=bert4rec_beauty"], "amazon-beauty"),
        Row("gru4rec_beauty", ["experiment=gru4rec_beauty"], "amazon-beauty"),
    ],
}

SUITES.update(cold_suites(Row))  # scripts/cold_start_benchmark.py: the item hold-out tables
