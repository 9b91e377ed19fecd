"""`seqrec-eval`: re-evaluate a finished run's best checkpoint, e.g. at other cut-offs or on new data.

Uses the run's own config and the same evaluation code as training (full ranking, the same
masking and tie rules, the popularity baseline beside the model), so `seqrec-eval run=X` on the
test split reproduces the test metrics in `X/metrics.json`. It writes one file,
`X/eval_<split>.json`, and nothing else: no new output folder, no log file.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from seqrec_cli.config.apps import EvalAppConfig, register_app_schemas, to_app_config, validate_eval
from seqrec_cli.config.checks import metric_names
from seqrec_cli.config.registry import CONFIG_PATH
from seqrec_cli.data.sources import describe_source
from seqrec_cli.cli.exits import check_composition, user_errors_exit
from seqrec_cli.errors import UserError
from seqrec_cli.reporting.runs import load_splits, open_run, other_dataset, side_inputs_for
from seqrec_cli.evaluation import cold_start, warm_cold
from seqrec_cli.evaluation.split_eval import SplitEval, evaluate_split
from seqrec_cli.models.item_repr import features_of
from seqrec_cli.io.artifacts import write_json
from seqrec_cli.io.console import results_table, show_table

log = logging.getLogger("seqrec_cli")


def evaluate_run(cfg: EvalAppConfig) -> dict[str, Any]:
    """Evaluate `cfg.run` on `cfg.split`, write the JSON (see `output_path`) and return its content."""
    validate_eval(cfg)
    started = time.perf_counter()
    run = open_run(cfg.run, cfg.device)
    train_cfg = run.cfg
    dataset = None
    if cfg.data.path:
        d = cfg.data
        dataset = other_dataset(
            train_cfg.dataset, d.path, user_col=d.user_col, item_col=d.item_col, time_col=d.time_col, sep=d.sep
        )
    splits, summary = load_splits(run, dataset)
    n_users = len(getattr(splits, cfg.split))
    if n_users == 0:
        raise UserError(f"No user of {describe_source(dataset or train_cfg.dataset)} has a {cfg.split} target.")
    how = SplitEval(
        max_len=train_cfg.model.max_len,
        mask_history=train_cfg.eval.mask_history if cfg.mask_history is None else cfg.mask_history,
        batch_size=cfg.batch_size or train_cfg.trainer.eval_batch_size,
        ks=list(cfg.k or train_cfg.eval.ks),
        amp=run.use_amp,
        device=run.device,
        side=side_inputs_for(run, splits.data),
    )
    matrix = cold_start.feature_matrix(features_of(run.model.item_repr)) if run.model.item_repr is not None else None
    evaluated = evaluate_split(splits, cfg.split, how, run.model, matrix=matrix)
    details = evaluated.details
    # Warm targets: items with training events; cold: none (flat names: evaluation/warm_cold.py).
    groups = cold_start.split_extras(details, cfg.split, matrix is not None).get(warm_cold.SECTION)
    result = {
        "run": str(run.run_dir.resolve()),
        "split": cfg.split,
        "dataset": describe_source(dataset or train_cfg.dataset),
        "users": n_users,
        "unknown_item_events": summary["unknown_item_events"],
        "best_epoch": run.epoch,
        "ks": how.ks,
        "mask_history": how.mask_history,
        "encoder": train_cfg.encoder.name,
        "metrics": evaluated.model,
        "popularity": evaluated.popularity,
        **({warm_cold.SECTION: groups} if groups else {}),
        "beyond": details["beyond"],
        **({"feature_baseline": details["metrics"]["features"]} if matrix is not None else {}),
        "device": str(run.device),
        "seconds": round(time.perf_counter() - started, 3),
    }
    out = output_path(cfg, run.run_dir)
    write_json(out, result)
    show_result(result)
    log.info("Wrote %s", out)
    return result


def show_result(result: dict[str, Any]) -> None:
    """The tables of an eval_<split>.json: metrics beside the popularity baseline, then the warm /
    cold and beyond-accuracy tables when it has them."""
    split, name, ks = result["split"], result["encoder"], result["ks"]
    show_table(
        results_table(
            f"{split.capitalize()} metrics ({result['users']} users, best epoch {result['best_epoch']})",
            {name: result["metrics"], "popularity": result["popularity"]},
            metric_names(ks),
        )
    )
    cold_start.show_cold_start({**result, "beyond": {split: result["beyond"]}}, name, ks)


def output_path(cfg: EvalAppConfig, run_dir: Path) -> Path:
    """`<run>/eval_<split>.json`; evaluating another file adds its name, so the two never mix."""
    if cfg.out:
        return Path(cfg.out).expanduser()
    suffix = f"_{Path(cfg.data.path).stem}" if cfg.data.path else ""
    return run_dir / f"eval_{cfg.split}{suffix}.json"


register_app_schemas()


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    evaluate_run(to_app_config(cfg, EvalAppConfig))


def cli() -> None:
    """The console script: a composition error is one sentence and exit 2, then Hydra runs `main`."""
    check_composition("eval", sys.argv[1:], "seqrec-eval")
    main()


if __name__ == "__main__":
    cli()
