"""Train and evaluate one RecBole 1.2.1 model from a JSON spec: `python recbole_runner.py SPEC OUT`.

Run by the RecBole virtual environment's python (`benchmark.py peer` builds it): RecBole needs
numpy < 2 and pandas < 3, so this file must not import seqrec_cli. It drives RecBole through its
lower-level API (Config, create_dataset, data_preparation, the model class, Trainer) rather than
`run_recbole`, so nothing of RecBole's quick-start (ray, hyper-parameter tuning) is needed, and it
times each training epoch and each validation pass itself by wrapping the Trainer's own methods,
so the loop, early stopping and checkpointing stay RecBole's.

SPEC: {"model": "SASRec", "dataset": "<name>", "threads": 2, "config": {<RecBole config dict>}}
OUT: JSON with the filtered counts, each user's validation / test target (original tokens),
training samples, per-epoch seconds, per-pass validation seconds, test metrics and peak RSS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# RecBole loads its best checkpoint with a bare torch.load; torch >= 2.6 defaults to weights_only.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def peak_rss_kb() -> int:
    """VmHWM of this process: the peak resident memory of the whole RecBole run."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def timed(store: list, method):
    """Wrap a bound Trainer method so every call's wall time is appended to `store`."""

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        result = method(*args, **kwargs)
        store.append(time.perf_counter() - started)
        return result

    return wrapper


def targets(loader) -> dict[str, str]:
    """User token -> target item token of a leave-one-out evaluation split."""
    dataset = loader._dataset
    users = dataset.inter_feat[dataset.uid_field].numpy()
    items = dataset.inter_feat[dataset.iid_field].numpy()
    user_tokens = dataset.id2token(dataset.uid_field, users)
    item_tokens = dataset.id2token(dataset.iid_field, items)
    return {str(u): str(i) for u, i in zip(user_tokens, item_tokens)}


def run(spec: dict) -> dict:
    import torch

    torch.set_num_threads(int(spec["threads"]))
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    started = time.perf_counter()
    config = Config(model=spec["model"], dataset=spec["dataset"], config_dict=spec["config"])
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    counts = {"users": dataset.user_num - 1, "items": dataset.item_num - 1, "interactions": dataset.inter_num}
    train_data, valid_data, test_data = data_preparation(config, dataset)
    data_seconds = time.perf_counter() - started

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    epoch_seconds: list[float] = []
    valid_seconds: list[float] = []
    trainer._train_epoch = timed(epoch_seconds, trainer._train_epoch)
    trainer._valid_epoch = timed(valid_seconds, trainer._valid_epoch)
    best_valid_score, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=False, verbose=False)
    test_started = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    test_seconds = time.perf_counter() - test_started

    return {
        "model": spec["model"],
        "counts": counts,
        "valid_targets": targets(valid_data),
        "test_targets": targets(test_data),
        "train_samples": len(train_data._dataset),
        "valid_users": len(valid_data._dataset),
        "n_params": sum(p.numel() for p in model.parameters()),
        "epoch_seconds": epoch_seconds,
        "valid_seconds": valid_seconds,
        "test_seconds": test_seconds,
        "data_seconds": data_seconds,
        "best_valid": {k: float(v) for k, v in (best_valid or {}).items()},
        "best_epoch": len(epoch_seconds) - trainer.cur_step * trainer.eval_step,
        "test": {k: float(v) for k, v in test.items()},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "peak_rss_kb": peak_rss_kb(),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: recbole_runner.py SPEC.json OUT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    result = run(spec)
    result["peak_rss_kb"] = peak_rss_kb()
    Path(argv[1]).write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
