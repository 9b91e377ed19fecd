"""`seqrec-recommend`: the top-K next items for users of a trained run, or for a typed history.

A user's recommendations come from their *full* history (training, validation and test events
alike: at serving time everything known is used), and everything is in the data's original ids,
with titles when the dataset has them. Items already in the history are excluded unless
`exclude_seen=false`. Unknown ids stop the command with one sentence, or are skipped with a
warning under `on_unknown=skip`.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

import hydra
import numpy as np
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from seqrec_cli.config.apps import RecommendAppConfig, register_app_schemas, to_app_config, validate_recommend
from seqrec_cli.config.registry import CONFIG_PATH
from seqrec_cli.data.metadata import item_titles
from seqrec_cli.cli.exits import check_composition, user_errors_exit
from seqrec_cli.errors import UserError
from seqrec_cli.io.artifacts import write_csv
from seqrec_cli.evaluation.inference import top_k
from seqrec_cli.evaluation.new_items import read_new_items
from seqrec_cli.reporting.runs import IdIndex, TrainedRun, load_splits, open_run, side_inputs_for
from seqrec_cli.serving.explain import explain_histories

log = logging.getLogger("seqrec_cli")

HISTORY_LABEL = "history"  # the `user` column of recommendations for a typed history
SHOW_AT_MOST = 200  # table rows printed when the full list also goes to a file


def recommend(cfg: RecommendAppConfig) -> list[dict[str, Any]]:
    """Rows (user, rank, item, [title], score) for every requested user / history; writes `cfg.out`."""
    validate_recommend(cfg)
    run = open_run(cfg.run, cfg.device)
    labels: list[Any] = []
    histories: list[np.ndarray] = []
    gaps: list[np.ndarray] = []
    user_rows: list[int] = []
    users = list(cfg.users) + (read_ids_file(cfg.users_file) if cfg.users_file else [])
    if users:
        for label, history, history_gaps, row in user_histories(run, users, cfg.on_unknown):
            labels.append(label)
            histories.append(history)
            gaps.append(history_gaps)
            user_rows.append(row)
    if cfg.history:
        if run.model.uses_time_gaps:
            raise UserError(
                "This run's model uses time gaps (encoder.time_features=gap), which a typed history does "
                "not have: ask for users= of its dataset instead."
            )
        found, unknown = IdIndex(run.item_ids).find(cfg.history)
        handle_unknown(unknown, "item", f"the model knows {len(run.item_ids)} items", cfg.on_unknown)
        if found:
            labels.append(HISTORY_LABEL)
            histories.append(np.asarray(found, dtype=np.int64) + 1)
            user_rows.append(0)  # no user: the history alone
    if not histories:
        raise UserError("Nothing to recommend for: every id given was unknown.")

    exclude = histories if cfg.exclude_seen else None
    new = read_new_items(run, cfg.item_table, cfg.candidates) if cfg.item_table else None
    top = top_k(
        run.model,
        histories,
        cfg.k,
        exclude=exclude,
        max_len=run.cfg.model.max_len,
        batch_size=cfg.batch_size,
        amp=run.use_amp,
        gaps=gaps if run.model.uses_time_gaps else None,
        users=np.asarray(user_rows, dtype=np.int64) if run.model.uses_users else None,
        extra=new.reprs if new is not None else None,
        allowed=new.allowed if new is not None else None,
    )
    if new is not None and len(new.ids):  # new items are columns n_items + 1..: name them
        run = replace(run, item_ids=np.concatenate([run.item_ids.astype(new.ids.dtype), new.ids]))
    reasons = None
    if cfg.explain:
        reasons = explain_histories(
            run.model, run.item_ids, histories, top.items, gaps=gaps, user_rows=user_rows, max_len=run.cfg.model.max_len
        )
    rows = _rows(run, labels, top.items, top.scores, reasons)
    if cfg.out:
        write_csv(Path(cfg.out).expanduser(), rows, first_columns=() if rows else ("user", "rank", "item", "score"))
    show_recommendations(rows, cfg.k, limit=SHOW_AT_MOST if cfg.out else None)
    if cfg.out:
        log.info("Wrote %d recommendations for %d histories to %s", len(rows), len(histories), cfg.out)
    return rows


def _rows(
    run: TrainedRun,
    labels: list[Any],
    top_items: np.ndarray,
    top_scores: np.ndarray,
    reasons: Optional[list[list[str]]],
) -> list[dict[str, Any]]:
    """One row per recommendation, in original ids; `because` where explanations were asked for."""
    titles = item_titles(run.cfg.dataset)
    rows = []
    for i, (label, items, scores) in enumerate(zip(labels, top_items, top_scores)):
        for rank, (item, score) in enumerate(zip(items, scores), start=1):
            if item == 0:  # fewer than k items were left to recommend
                break
            original = run.item_ids[item - 1].item()
            row = {"user": label, "rank": rank, "item": original}
            if titles is not None:
                row["title"] = titles.get(original, "")
            row["score"] = round(float(score), 6)
            if reasons is not None:  # the history items that raised this score most (occlusion)
                row["because"] = reasons[i][rank - 1]
            rows.append(row)
    return rows


def user_histories(
    run: TrainedRun, users: Sequence[str], on_unknown: str
) -> list[tuple[Any, np.ndarray, Optional[np.ndarray], int]]:
    """(original user id, full history in model item ids, its time-gap buckets or None, the
    model's user row) for each known user, in the given order."""
    splits, _ = load_splits(run)
    data = splits.data
    side = side_inputs_for(run, data)
    found, unknown = IdIndex(data.user_ids).find(dict.fromkeys(users))  # dict: drop repeats, keep order
    sample = ", ".join(str(v) for v in data.user_ids[:3].tolist())
    handle_unknown(unknown, "user", f"the run's {data.n_users} users have ids such as {sample}", on_unknown)
    out = []
    for u in found:
        events = slice(data.offsets[u], data.offsets[u + 1])
        history = data.items[events].astype(np.int64)
        history_gaps = side.gaps[events] if side.gaps is not None else None
        row = int(side.user_rows[u]) if side.user_rows is not None else 0
        if len(history):
            out.append((data.user_ids[u].item(), history, history_gaps, row))
        else:
            log.warning("User %s has no events of items the model knows: skipped.", data.user_ids[u])
    return out


def handle_unknown(unknown: list[str], what: str, known: str, on_unknown: str) -> None:
    """Stop with one sentence on unknown ids, or warn and go on under `on_unknown=skip`.

    `known` says what the known ids look like, so a wrong column or a typo is easy to spot.
    """
    if not unknown:
        return
    shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
    noun = f"{what} id" + ("s" if len(unknown) > 1 else "")
    if on_unknown == "skip":
        log.warning("Skipping unknown %s %s (%s).", noun, shown, known)
        return
    raise UserError(f"Unknown {noun} {shown} ({known}); pass on_unknown=skip to skip unknown ids.")


def read_ids_file(path: str) -> list[str]:
    """One id per line (the first comma- or tab-separated field); blank and `#` lines are skipped."""
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"Cannot read users_file {path}: {getattr(exc, 'strerror', None) or exc}.") from None
    ids = [line.replace("\t", ",").split(",")[0].strip() for line in lines]
    ids = [i for i in ids if i and not i.startswith("#")]
    if not ids:
        raise UserError(f"users_file {path} holds no user ids.")
    return ids


def show_recommendations(
    rows: list[dict[str, Any]], k: int, limit: Optional[int] = None, console: Optional[Console] = None
) -> None:
    """One table on stdout: user, rank, item, [title], score."""
    table = Table(title=f"Top-{k} recommendations")
    columns = list(rows[0]) if rows else ["user", "rank", "item", "score"]
    for name in columns:
        table.add_column(name, justify="right" if name in ("rank", "score") else "left")
    for row in rows[:limit]:
        table.add_row(*(f"{row[c]:.4f}" if c == "score" else str(row[c]) for c in columns))
    (console or Console()).print(table)
    if limit is not None and len(rows) > limit:
        log.info("(%d more rows in the CSV file)", len(rows) - limit)


register_app_schemas()


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="recommend")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    recommend(to_app_config(cfg, RecommendAppConfig))


def cli() -> None:
    """The console script: a composition error is one sentence and exit 2, then Hydra runs `main`."""
    check_composition("recommend", sys.argv[1:], "seqrec-recommend")
    main()


if __name__ == "__main__":
    cli()
