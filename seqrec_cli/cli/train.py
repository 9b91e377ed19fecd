"""`seqrec-train`: compose a config with Hydra, run `seqrec_cli.api.train`, map errors to exits.

The exit codes are `seqrec_cli.cli.exits`' (a bug's traceback also goes to train.log). Under a
sweep a failed job is recorded (error.json, NaN objective) and the sweep goes on.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Optional

from seqrec_cli.cli.exits import EXIT_BUG, EXIT_OOM, EXIT_USER, check_composition
from seqrec_cli.errors import Interrupted, UserError
from seqrec_cli.io.signals import interrupts_as_exits

log = logging.getLogger("seqrec_cli")


def cli() -> None:
    """The console script. Everything heavy is imported inside, where a stop request becomes a
    one-line exit; SIGTERM outside the training loop raises `Interrupted` wherever it lands."""
    with interrupts_as_exits():
        if _print_help(sys.argv[1:]):
            return
        _check_explicit_run_dir(sys.argv[1:])
        main = _hydra_main()
        check_composition("train", sys.argv[1:], "seqrec-train")
        main()


def _print_help(args: list[str]) -> bool:
    """`--help`, rendered from conf/hydra/help/seqrec.yaml as Hydra does, in a fraction of the time:
    Hydra lists a group's options by copying the whole config repository once per group (about a
    hundred copies), while the options are just the YAML files of each folder of conf/."""
    if "--help" not in args and "-h" not in args:
        return False
    from hydra import compose, initialize_config_dir, initialize_config_module
    from omegaconf import OmegaConf

    from seqrec_cli.config.registry import CONFIG_PATH, register_resolvers, register_schemas

    register_schemas()
    register_resolvers()
    overrides = [a for a in args if a not in ("--help", "-h")]
    if CONFIG_PATH.startswith("pkg://"):
        init = initialize_config_module(CONFIG_PATH[len("pkg://") :], version_base="1.3")
    else:
        init = initialize_config_dir(CONFIG_PATH, version_base="1.3")
    with init:
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    help_cfg = OmegaConf.to_container(cfg.hydra.help, resolve=True)
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    text = help_cfg["template"].replace("$APP_CONFIG_GROUPS", _config_groups(CONFIG_PATH))
    sys.stdout.write(text.replace("$CONFIG", OmegaConf.to_yaml(task)))
    return True


def _config_groups(config_path: str) -> str:
    """`group: option, option, ...` for every folder of conf/ but Hydra's own, sorted as Hydra sorts."""
    from importlib.resources import files

    root = files(config_path[len("pkg://") :]) if config_path.startswith("pkg://") else Path(config_path)
    lines = []
    for group in sorted(
        (d for d in root.iterdir() if d.is_dir() and d.name not in ("hydra", "__pycache__")), key=lambda d: d.name
    ):
        options = sorted(f.name[: -len(".yaml")] for f in group.iterdir() if f.name.endswith(".yaml"))
        if options:
            lines.append(f"{group.name}: {', '.join(options)}")
    return "\n".join(lines)


def _hydra_main() -> Any:
    import hydra

    from seqrec_cli.config.registry import CONFIG_PATH, register_resolvers, register_schemas

    register_schemas()
    register_resolvers()
    return hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")(task)


def task(cfg: Any) -> float:
    """One job: validate, train, return the objective (NaN for a failed job under a sweep)."""
    import torch
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from seqrec_cli.config.convert import to_train_config
    from seqrec_cli.reporting.sweep import reuse_job_dir
    from seqrec_cli.api import resume_checkpoint, train

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if int(os.environ.get("RANK", "0")) > 0:
        logging.getLogger().setLevel(logging.WARNING)  # one console voice under torchrun: rank 0's
    try:
        typed = to_train_config(cfg)
        if multirun and (done := reuse_job_dir(cfg, typed, run_dir)) is not None:
            return done  # a re-run sweep (hydra.sweep.dir=<that sweep>): this job finished already
        if typed.trainer.num_threads is None:
            typed.trainer.num_threads = _threads_for_parallel_jobs(hydra_cfg)
        metrics = train(typed, run_dir, resume_checkpoint(typed.trainer.resume), _hydra_record(cfg, hydra_cfg))
        return float(metrics["objective"])
    except KeyboardInterrupt:
        _interrupted(Interrupted("SIGINT"), run_dir, list(hydra_cfg.overrides.task))
    except Interrupted as exc:
        _interrupted(exc, run_dir, list(hydra_cfg.overrides.task))
    except UserError as exc:
        return _failed(run_dir, str(exc), multirun, EXIT_USER)
    except torch.cuda.OutOfMemoryError as exc:
        message = f"The GPU ran out of memory ({str(exc).splitlines()[0]}): lower trainer.batch_size or model.max_len."
        return _failed(run_dir, message, multirun, EXIT_OOM)
    except Exception as exc:
        # A bug, not a user error: the traceback is what a report needs, in train.log as well.
        log.exception("Unexpected error: %s: %s", type(exc).__name__, exc)
        return _failed(run_dir, f"{type(exc).__name__}: {exc}", multirun, EXIT_BUG)
    finally:
        _drop_if_empty(run_dir)
    return math.nan


def _threads_for_parallel_jobs(hydra_cfg: Any) -> Optional[int]:
    """Under a parallel launcher (joblib) split the CPU cores between jobs, so N jobs with
    PyTorch's default of one thread per core do not oversubscribe the machine N times over."""
    launcher = hydra_cfg.launcher
    n_jobs = launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")).lower() else None
    if not n_jobs:
        return None
    cores = os.cpu_count() or 1
    parallel = cores if n_jobs < 0 else min(n_jobs, cores)
    return max(1, cores // parallel)


def _failed(run_dir: Path, message: str, multirun: bool, exit_code: int) -> float:
    """A failed job: under a sweep record it (error.json) and return NaN so the sweep goes on;
    in a single run exit non-zero. A new run's train.log already holds the message; a refused
    resume writes nothing into the run it was pointed at."""
    from seqrec_cli.io.atomic import write_text_atomic
    from seqrec_cli.io.logfile import commit_log_files

    log.error("%s", message)
    if exit_code == EXIT_BUG:
        commit_log_files()  # a bug's traceback is worth keeping even beside a refused resume
    if multirun:
        commit_log_files()
        write_text_atomic(run_dir / "error.json", f'{{"error": {_json_string(message)}}}\n')
        return math.nan
    sys.exit(exit_code)


def _json_string(text: str) -> str:
    import json

    return json.dumps(text)


def _interrupted(exc: Interrupted, run_dir: Path, overrides: list[str]) -> None:
    """Say what an interrupt kept, and how to continue; exit 130 (SIGINT) or 143 (SIGTERM)."""
    again = " ".join(
        ["seqrec-train", *(o for o in overrides if not o.startswith("trainer.resume=")), f"trainer.resume={run_dir}"]
    )
    if exc.epochs_done:
        kept = f"Epoch {exc.epochs_done} is saved; continue with:  {again}"
    elif exc.epochs_done == 0:
        kept = "No epoch had finished: nothing was kept but the initial weights."
    else:
        kept = "Nothing was trained yet."
    log.error("Interrupted by %s. %s", exc.signal_name, kept)
    sys.exit(exc.exit_code)


def _hydra_record(cfg: Any, hydra_cfg: Any) -> dict[str, str]:
    """What Hydra would have saved in .hydra/, written by `run` only once its checks have passed
    (`hydra.output_subdir` is null in conf/train.yaml)."""
    from omegaconf import OmegaConf

    return {
        ".hydra/config.yaml": OmegaConf.to_yaml(cfg),
        ".hydra/hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})),
        ".hydra/overrides.yaml": OmegaConf.to_yaml(hydra_cfg.overrides.task),
    }


def _check_explicit_run_dir(args: list[str]) -> None:
    """`hydra.run.dir=DIR` on the command line is created by Hydra before any of our code runs;
    a folder that cannot be created would end in Hydra's traceback, so it is checked first."""
    for arg in args:
        if arg.startswith("hydra.run.dir=") and "${" not in arg:
            folder = Path(arg.split("=", 1)[1]).expanduser()
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                sys.stderr.write(f"Cannot create the run directory {folder}: {(exc.strerror or str(exc)).lower()}.\n")
                sys.exit(2)


def _drop_if_empty(run_dir: Path) -> None:
    """A run stopped before it wrote anything (rejected config, nothing to resume) leaves no
    directory behind: an empty folder is not a run."""
    try:
        run_dir.rmdir()
    except OSError:
        pass  # not empty, or not ours to remove


if __name__ == "__main__":
    cli()
