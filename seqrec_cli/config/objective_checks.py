"""Value checks for the training objective, the negatives and GRU4Rec's encoder options: the
combinations that type-check but cannot train what they say (see `checks.validate`)."""

from __future__ import annotations

from seqrec_cli.config.require import require, require_choice
from seqrec_cli.config.schema import ENCODER_INPUTS, OBJECTIVES, TrainConfig


def validate_objective(cfg: TrainConfig) -> None:
    """objective.*, loss.sampling / loss.bpreg against the rest, encoder.input / embedding_dropout."""
    ob, e, loss, t = cfg.objective, cfg.encoder, cfg.loss, cfg.trainer
    require_choice("objective.name", ob.name, OBJECTIVES)
    require(0.0 < ob.mask_prob < 1.0, "objective.mask_prob", ob.mask_prob, "a number strictly between 0 and 1")
    if ob.name == "masked":
        require(
            e.name == "attention",
            "objective.name",
            ob.name,
            f"next: the masked objective needs bidirectional attention (encoder=attention), and encoder={e.name} "
            "only reads the sequence forwards",
        )
        require(
            e.time_features == "none",
            "encoder.time_features",
            e.time_features,
            "none with objective=masked (the appended mask token has no time gap)",
        )
    require_choice("encoder.input", e.input, ENCODER_INPUTS)
    if e.input == "one_hot":
        require(
            e.name in ("gru", "lstm"), "encoder.input", e.input, f"embedding: encoder={e.name} has no one-hot input"
        )
    require(
        e.embedding_dropout is None or 0.0 <= e.embedding_dropout < 1.0,
        "encoder.embedding_dropout",
        e.embedding_dropout,
        "null or a number in [0, 1)",
    )
    batch_negatives = loss.sampling in ("in_batch", "mixed")
    if batch_negatives:
        require(
            loss.name != "ce",
            "loss.sampling",
            loss.sampling,
            "uniform with loss=ce: full cross-entropy scores the whole catalogue and takes no negatives",
        )
        require(
            t.batch_size >= 2,
            "trainer.batch_size",
            t.batch_size,
            f"an integer >= 2 with loss.sampling={loss.sampling} (the negatives are the batch's other targets)",
        )
    require(loss.bpreg >= 0, "loss.bpreg", loss.bpreg, "a number >= 0")
    require(
        loss.bpreg == 0 or loss.name == "bpr_max",
        "loss.bpreg",
        loss.bpreg,
        f"0 with loss={loss.name}: the score regularisation belongs to BPR-max (loss=bpr_max)"
        + (", and full cross-entropy has no sampled negatives to regularise" if loss.name == "ce" else ""),
    )
