"""The RecBole side of `benchmark.py peer`: its environment, its config mirrored from ours, its run.

RecBole 1.2.1 runs in a virtual environment of its own (it needs numpy < 2 and pandas < 3;
seqrec_cli needs the opposite), created here once and driven by `recbole_runner.py` in a child
process. `recbole_config` turns our composed config into RecBole's settings and refuses, with one
sentence, what RecBole cannot mirror; `recbole_side` puts the runner's figures in the shape
`peer.run_ours` returns. Kept apart from `peer.py`, which pairs the two sides, as
`peer_rectools.py` is for RecTools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from peer import PeerDataset

RUNNER = Path(__file__).resolve().with_name("recbole_runner.py")

# RecBole 1.2.1 breaks with numpy 2 and pandas 3; its `ray` import needs pkg_resources (setuptools
# < 81). torch==2.13.0 is the CPU build on this machine's local wheel store, as for our side.
RECBOLE_PINS = ["recbole==1.2.1", "numpy<2", "pandas<3", "setuptools<81", "torch==2.13.0"]
RECBOLE_VERSION = "1.2.1"
MODELS = {"attention": "SASRec", "gru": "GRU4Rec"}


# ------------------------------------------------------------------------------ environment


def recbole_python(venv: Path) -> Path:
    # Absolute: RecBole runs with its scratch folder as the working directory.
    return venv.absolute() / "bin" / "python"


def recbole_ready(venv: Path) -> bool:
    """True when `venv` already holds RecBole 1.2.1 (then it is reused as it is)."""
    python = recbole_python(venv)
    if not python.is_file():
        return False
    probe = f"import recbole, sys; sys.exit(recbole.__version__ != {RECBOLE_VERSION!r})"
    return subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


def ensure_recbole_venv(venv: Path, install: bool = True) -> Path:
    """The RecBole environment's python, creating the environment once (about 1.5 min)."""
    if recbole_ready(venv):
        return recbole_python(venv)
    if not install:
        raise SystemExit(
            f"No RecBole {RECBOLE_VERSION} environment at {venv}: run without --skip-recbole-install to create it."
        )
    print(f"creating {venv} with {' '.join(RECBOLE_PINS)} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(recbole_python(venv)), "-m", "pip", "install", "--quiet"]
    done = subprocess.run([*pip, *RECBOLE_PINS], capture_output=True, text=True)
    if done.returncode != 0 or not recbole_ready(venv):
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(
            f"Installing RecBole into {venv} failed (pip exit code {done.returncode}); see the pip output above."
        )
    return recbole_python(venv)


# ----------------------------------------------------------------------------------- config


def _interval(min_count: int) -> Optional[str]:
    return f"[{min_count},inf)" if min_count > 1 else None


def _metric(name: str) -> str:
    family, k = name.split("@")
    return {"hr": "Hit", "ndcg": "NDCG"}[family] + "@" + k


def recbole_config(
    cfg: Any, dataset_name: str, data_path: Path, checkpoint_dir: Path, train_batch_size: int
) -> dict[str, Any]:
    """RecBole settings equal to our config `cfg` where RecBole has the setting at all.

    Refuses what RecBole cannot mirror (another loss, rating filters, de-duplication, history caps,
    the temporal split) with one sentence, rather than comparing different experiments.
    """
    refuse_unmirrored(cfg)
    d, t, m, o = cfg.dataset, cfg.trainer, cfg.model, cfg.optimizer
    config: dict[str, Any] = {
        "data_path": str(data_path),
        "checkpoint_dir": str(checkpoint_dir),
        "use_gpu": False,
        "worker": 0,
        "show_progress": False,
        "state": "WARNING",
        "seed": t.seed,
        "reproducibility": True,
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": _interval(d.min_user_count),
        "item_inter_num_interval": _interval(d.min_item_count),
        # Positions are exact integers: keep them as they are.
        "normalize_field": None,
        "normalize_all": False,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "train_neg_sample_args": None,
        "loss_type": "CE",
        "MAX_ITEM_LIST_LENGTH": m.max_len,
        "learner": o.name,
        "learning_rate": o.lr,
        "weight_decay": o.weight_decay,
        "epochs": t.max_epochs,
        "stopping_step": t.patience,
        "eval_step": t.eval_every,
        "train_batch_size": int(train_batch_size),
        "eval_batch_size": t.eval_batch_size,
        "clip_grad_norm": {"max_norm": t.grad_clip_norm} if t.grad_clip_norm else None,
        "metrics": ["Hit", "NDCG"],
        "topk": [10],
        "valid_metric": _metric(t.monitor),
    }
    config.update(model_settings(cfg.encoder, m))
    return config


def refuse_unmirrored(cfg: Any) -> None:
    """Stop with one sentence on a setting of ours that RecBole has no equal of."""
    d, t, e, o = cfg.dataset, cfg.trainer, cfg.encoder, cfg.optimizer
    unsupported = [
        (cfg.loss.name != "ce", f"loss={cfg.loss.name}"),
        (e.name not in MODELS, f"encoder={e.name}"),
        (d.min_rating is not None, f"dataset.min_rating={d.min_rating}"),
        (d.dedup != "all", f"dataset.dedup={d.dedup}"),
        (d.max_history is not None, f"dataset.max_history={d.max_history}"),
        (d.split.kind != "leave_one_out", f"dataset.split.kind={d.split.kind}"),
        (o.name not in ("adam", "adamw", "sgd"), f"optimizer={o.name}"),
        (t.monitor.split("@")[0] not in ("hr", "ndcg"), f"trainer.monitor={t.monitor}"),
    ]
    for bad, setting in unsupported:
        if bad:
            raise SystemExit(
                f"The RecBole comparison cannot mirror {setting}: "
                "it compares loss=ce, attention/gru, leave-one-out runs only."
            )


def model_settings(e: Any, m: Any) -> dict[str, Any]:
    """SASRec's settings from our attention encoder, GRU4Rec's from our GRU."""
    if e.name == "attention":
        return {
            "n_layers": e.num_layers,
            "n_heads": e.num_heads,
            "hidden_size": m.embedding_dim,
            "inner_size": e.ffn_size or m.embedding_dim,
            "hidden_dropout_prob": e.dropout,
            "attn_dropout_prob": e.dropout,
            "hidden_act": "gelu",
            "initializer_range": m.init_std,
        }
    return {
        "embedding_size": m.embedding_dim,
        "hidden_size": e.hidden_size or m.embedding_dim,
        "num_layers": e.num_layers,
        "dropout_prob": e.dropout,
    }


def matched_batch(our_batch: int, train_sequences: int, train_positions: int) -> int:
    """RecBole prefixes per step carrying as many targets as one of our batches does on average."""
    return max(1, round(our_batch * train_positions / max(train_sequences, 1)))


# -------------------------------------------------------------------------------------- run


def run_recbole(
    python: Path, dataset: PeerDataset, config: dict[str, Any], model: str, threads: int, scratch: Path
) -> dict[str, Any]:
    """One RecBole run in its own environment and process; the runner's JSON, parsed."""
    work = scratch / f"recbole-{dataset.key}-{model}"
    work.mkdir(parents=True, exist_ok=True)
    spec, out = work / "spec.json", work / "result.json"
    spec.write_text(json.dumps({"model": model, "dataset": dataset.recbole_name, "threads": threads, "config": config}))
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONWARNINGS": "ignore"}
    # cwd = work: RecBole writes log_tensorboard/ into the current folder.
    done = subprocess.run(
        [str(python), str(RUNNER), str(spec), str(out)], cwd=work, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"RecBole {model} on {dataset.key} failed (exit code {done.returncode}); its output is above.")
    return json.loads(out.read_text())


def recbole_side(result: dict[str, Any], train_batch_size: int) -> dict[str, Any]:
    """The runner's figures in the same shape as `peer.run_ours` returns."""
    from peer_data import runner_figures

    return {
        **runner_figures(result),
        "train_sequences": result["train_samples"],
        "train_targets": result["train_samples"],
        "eval_users": result["valid_users"],
        "batch": f"{train_batch_size} prefixes",
    }
