"""Optional experiment tracking: MLflow or TensorBoard, fed by the training loop.

The run directory stays the record of a run; a tracker copies the settings, every epoch's history
row and the final metrics into a tool people already browse. The packages are optional extras,
imported only when chosen, and a missing one is a `UserError` before any training starts.
`open_tracker` gives a `NullTracker` for `logger=none`, so the training code never branches on it.

MLflow's filesystem store (`./mlruns`) is refused by MLflow 3 unless an environment variable
opts in, so the default store is MLflow's recommended local backend instead: a SQLite file in the
run directory (`<run dir>/mlflow.db`). A resumed run continues the same MLflow run (its id is kept
in `<run dir>/tracking.json`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Protocol

from seqrec_cli.config import LoggerConfig, flat_dict
from seqrec_cli.errors import UserError
from seqrec_cli.training.artifacts import write_json

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


def open_tracker(cfg: LoggerConfig, run_dir: Path, config: Mapping[str, Any], resumed: bool = False) -> Tracker:
    """The tracker `cfg` names, with the run's settings (`config`, nested) already logged."""
    if cfg.name == "mlflow":
        return MlflowTracker(cfg, run_dir, config, resumed)
    if cfg.name == "tensorboard":
        return TensorBoardTracker(cfg, run_dir, config)
    return NullTracker()


def epoch_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a history row, without the epoch counter itself."""
    return {k: float(v) for k, v in row.items() if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """metrics.json as flat numbers: `best_valid/ndcg@10`, `test/mrr`, `popularity/test/hr@10`, timings.

    The validation metrics of the best epoch are `best_valid/...` so they never land in the
    per-epoch `valid/...` curves.
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = "best_valid" if key == "valid" else key
        if isinstance(value, dict):
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
                experiment_id = experiment.experiment_id if experiment else self._create_experiment(cfg.experiment)
                run = self.client.create_run(experiment_id, run_name=run_dir.name, tags={"seqrec.run_dir": str(run_dir.resolve())})
                self.run_id = run.info.run_id
                params = [Param(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v)) for k, v in flat_dict(config).items()]
                for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                    self.client.log_batch(self.run_id, params=params[start : start + 100])
        except MlflowException as exc:
            raise UserError(f"MLflow at {uri} failed: {str(exc).splitlines()[0]}") from None
        write_json(state_path, {**_read_state(state_path), "mlflow_run_id": self.run_id, "mlflow_tracking_uri": uri})
        log.info("MLflow: run %s in %s", self.run_id, uri)

    def _create_experiment(self, name: str) -> str:
        try:
            return self.client.create_experiment(name)
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

    def close(self, status: str = "FINISHED") -> None:
        try:
            self.client.set_terminated(self.run_id, status=status)
        except self._exception as exc:  # never hide the run's own outcome behind the tracker's
            log.warning("MLflow could not mark run %s %s: %s", self.run_id, status, str(exc).splitlines()[0])


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
