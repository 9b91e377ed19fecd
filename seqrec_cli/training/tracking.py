"""Optional experiment tracking: MLflow or TensorBoard, fed by the training loop.

The run directory stays the record of a run; a tracker copies the settings, every epoch's history
row and the final metrics into a tool people already browse. The packages are optional extras,
imported only when chosen, and a missing one is a `UserError` before any training starts.
`open_tracker` gives a `NullTracker` for `logger=none`, so the training code never branches on it.

MLflow's filesystem store (`./mlruns`) is refused by MLflow 3 unless an environment variable
opts in, so the default store is MLflow's recommended local backend instead: a SQLite file in the
run directory (`<run dir>/mlflow.db`). A resumed run continues the same MLflow run (its id is kept
in `<run dir>/tracking.json`).

Several trackers at once (`logger=[mlflow,tensorboard]`) are a `CompositeTracker` that feeds each
in turn. At the end MLflow also stores the run's files as artifacts (metrics.json, curves.png, the
composed config), and a sweep job's MLflow run is named after the overrides that set it apart.
The run's `tags` become MLflow tags and a TensorBoard text entry.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, Sequence

from omegaconf import OmegaConf

from seqrec_cli.config.convert import flat_dict
from seqrec_cli.config.schema import LOGGERS, LoggerConfig
from seqrec_cli.errors import UserError
from seqrec_cli.evaluation import warm_cold
from seqrec_cli.io.artifacts import write_json

log = logging.getLogger(__name__)

STATE_FILE = "tracking.json"


class Tracker(Protocol):
    def log_epoch(self, row: Mapping[str, Any]) -> None: ...

    def log_final(self, metrics: Mapping[str, Any]) -> None: ...

    def close(self, status: str = "FINISHED") -> None:
        """`status`: FINISHED, FAILED or KILLED (interrupted)."""


class NullTracker:
    def log_epoch(self, row: Mapping[str, Any]) -> None:
        pass

    def log_final(self, metrics: Mapping[str, Any]) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        pass


class CompositeTracker:
    """Several trackers fed the same rows; one failing to close does not keep the others open."""

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = list(trackers)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log_epoch(row)

    def log_final(self, metrics: Mapping[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log_final(metrics)

    def close(self, status: str = "FINISHED") -> None:
        for tracker in self.trackers:
            try:
                tracker.close(status)
            except Exception as exc:  # never hide the run's own outcome behind a tracker's
                log.warning("%s could not close: %s", type(tracker).__name__, exc)


def tracker_names(cfg: LoggerConfig) -> list[str]:
    """The trackers in use, in LOGGERS order: every `use.<name>: true` plus `name` (what runs recorded
    before several trackers were possible)."""
    chosen = {n for n, on in cfg.use.items() if on} | {cfg.name}
    return [n for n in LOGGERS if n != "none" and n in chosen]


def open_tracker(cfg: LoggerConfig, run_dir: Path, config: Mapping[str, Any], resumed: bool = False) -> Tracker:
    """The trackers `cfg` names (one, several, or a `NullTracker`), with the run's settings
    (`config`, nested) already logged."""
    opened: list[Tracker] = []
    try:
        for name in tracker_names(cfg):
            if name == "mlflow":
                opened.append(MlflowTracker(cfg, run_dir, config, resumed))
            elif name == "tensorboard":
                opened.append(TensorBoardTracker(cfg, run_dir, config))
    except BaseException:
        CompositeTracker(opened).close("FAILED")  # the ones already open must not stay RUNNING
        raise
    if not opened:
        return NullTracker()
    return opened[0] if len(opened) == 1 else CompositeTracker(opened)


def run_name(run_dir: Path) -> str:
    """A sweep job is named after the overrides that set it apart from the other jobs
    (`encoder=gru optimizer.lr=0.001`), not its job number; a single run keeps its directory name."""
    own = _yaml_list(run_dir / ".hydra" / "overrides.yaml")
    sweep_file = _sweep_dir() / "multirun.yaml" if _sweep_dir() else None
    if not own or sweep_file is None or not sweep_file.is_file():
        return run_dir.name
    try:
        shared = {_unescaped(o) for o in OmegaConf.load(sweep_file).hydra.overrides.task}
    except Exception:  # an unreadable multirun.yaml only costs the nicer name
        shared = set()
    return " ".join(o for o in map(_unescaped, own) if o not in shared) or run_dir.name


def _unescaped(override: str) -> str:
    """A job's override as the sweep command wrote it (Hydra escapes `:` and the like per job)."""
    return str(override).replace("\\", "")


def _sweep_dir() -> Optional[Path]:
    """The multirun's sweep directory when this process runs a sweep job, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(HydraConfig.get().sweep.dir)


def _yaml_list(path: Path) -> list[str]:
    try:
        return [str(o) for o in OmegaConf.load(path)]
    except Exception:
        return []


def epoch_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a history row, without the epoch counter itself."""
    return {k: float(v) for k, v in row.items() if k != "epoch" and _is_number(v)}


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """metrics.json as flat numbers: `best_valid/ndcg@10`, `test/mrr`, `popularity/test/hr@10`, timings.

    The validation metrics of the best epoch are `best_valid/...` so they never land in the
    per-epoch `valid/...` curves. The warm / cold section's names are flat already
    (`test/cold/ndcg@10`, evaluation/warm_cold.py) and are logged as they are.
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = "best_valid" if key == "valid" else key
        if key == warm_cold.SECTION and isinstance(value, dict):
            out.update({k: float(v) for k, v in value.items() if _is_number(v)})
        elif isinstance(value, dict):
            out.update({f"{name}/{k}": float(v) for k, v in flat_dict(value).items() if _is_number(v)})
        elif _is_number(value) and key != "objective":
            out[name] = float(value)
    return {k.replace(".", "/"): v for k, v in out.items()}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _import(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"logger={extra} needs the {extra} package, which is not installed: pip install 'seqrec-cli[{extra}]' "
            "(or choose logger=none)."
        ) from None


class MlflowTracker:
    """MLflow through its explicit client (no process-global active run)."""

    def __init__(self, cfg: LoggerConfig, run_dir: Path, config: Mapping[str, Any], resumed: bool) -> None:
        mlflow = _import("mlflow", "mlflow")
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        self._exception = MlflowException
        self.run_dir = run_dir
        self.config = config
        uri = cfg.tracking_uri or f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
        state_path = run_dir / STATE_FILE
        try:
            self.client = mlflow.MlflowClient(tracking_uri=uri)
            previous = _read_state(state_path).get("mlflow_run_id") if resumed else None
            if previous is not None:
                self.run_id = previous
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                experiment = self.client.get_experiment_by_name(cfg.experiment)
                experiment_id = experiment.experiment_id if experiment else self._create_experiment(cfg.experiment, uri)
                tags = {"seqrec.run_dir": str(run_dir.resolve()), **mlflow_tags(config.get("tags") or [])}
                run = self.client.create_run(experiment_id, run_name=run_name(run_dir), tags=tags)
                self.run_id = run.info.run_id
                params = [
                    Param(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v))
                    for k, v in flat_dict(config).items()
                ]
                for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                    self.client.log_batch(self.run_id, params=params[start : start + 100])
        except MlflowException as exc:
            raise UserError(f"MLflow at {uri} failed: {str(exc).splitlines()[0]}") from None
        write_json(state_path, {**_read_state(state_path), "mlflow_run_id": self.run_id, "mlflow_tracking_uri": uri})
        log.info("MLflow: run %s in %s", self.run_id, uri)

    def _create_experiment(self, name: str, uri: str) -> str:
        try:
            return self.client.create_experiment(name, artifact_location=artifact_location(uri))
        except self._exception:  # another job of a sweep created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def _log(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(k), v, now, step) for k, v in values.items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self._log(epoch_metrics(row), int(row["epoch"]))

    def log_final(self, metrics: Mapping[str, Any]) -> None:
        self._log(final_metrics(metrics), int(metrics.get("best_epoch", 0)))
        self._log_artifacts()

    def _log_artifacts(self) -> None:
        """metrics.json, curves.png and the composed config (.hydra/config.yaml as Hydra wrote it,
        or the run's settings where the run was started from Python), beside the metrics."""
        try:
            for name in ("metrics.json", "curves.png"):
                if (self.run_dir / name).is_file():
                    self.client.log_artifact(self.run_id, str(self.run_dir / name))
            composed = self.run_dir / ".hydra" / "config.yaml"
            if composed.is_file():
                self.client.log_artifact(self.run_id, str(composed))
            else:
                self.client.log_dict(self.run_id, dict(self.config), "config.yaml")
        except (self._exception, OSError) as exc:  # the metrics are logged; a full artifact store is no reason to fail
            log.warning("MLflow could not store the run's files as artifacts: %s", str(exc).splitlines()[0])

    def close(self, status: str = "FINISHED") -> None:
        try:
            self.client.set_terminated(self.run_id, status=status)
        except self._exception as exc:  # never hide the run's own outcome behind the tracker's
            log.warning("MLflow could not mark run %s %s: %s", self.run_id, status, str(exc).splitlines()[0])


def mlflow_tags(tags: Sequence[str]) -> dict[str, str]:
    """`tags=[baseline,ablation]` as MLflow tags: one key per label (searchable as `tags.baseline = 'true'`)
    and all of them in `seqrec.tags`."""
    if not tags:
        return {}
    # MLflow keys allow letters, digits and `_-. /`: anything else in a label becomes `_`.
    return {**{re.sub(r"[^\w\-. /]", "_", str(t)): "true" for t in tags}, "seqrec.tags": ",".join(map(str, tags))}


def artifact_location(uri: str) -> Optional[str]:
    """Artifacts of a SQLite store go in `mlartifacts/` beside the database file; MLflow's default
    would be `./mlruns` under whatever folder the command ran in. Servers choose their own."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///") :]).expanduser().resolve().parent / "mlartifacts").as_uri()


def mlflow_key(name: str) -> str:
    """MLflow allows letters, digits and `_-./ :` in metric names: `ndcg@10` becomes `ndcg_at_10`."""
    return name.replace("@", "_at_")


class TensorBoardTracker:
    """Event files via PyTorch's SummaryWriter (needs the tensorboard package)."""

    def __init__(self, cfg: LoggerConfig, run_dir: Path, config: Mapping[str, Any]) -> None:
        _import("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(cfg.log_dir).expanduser() if cfg.log_dir else run_dir / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.params = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flat_dict(config).items()}
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in self.params.items()))
        if config.get("tags"):
            self.writer.add_text("tags", ", ".join(map(str, config["tags"])))
        log.info("TensorBoard: event files in %s", self.log_dir)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        for key, value in epoch_metrics(row).items():
            self.writer.add_scalar(key, value, int(row["epoch"]))
        self.writer.flush()

    def log_final(self, metrics: Mapping[str, Any]) -> None:
        # The hparams view pairs the settings with the final numbers across runs.
        self.writer.add_hparams(self.params, final_metrics(metrics), run_name=".")

    def close(self, status: str = "FINISHED") -> None:
        self.writer.close()


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
