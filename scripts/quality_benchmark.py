"""`benchmark.py quality`: real `seqrec-train` runs, their test metrics beside the published
full-ranking numbers (docs/REFERENCES.md) and the popularity baseline.

Two ways to name the runs:
- `--experiment sasrec_beauty [gru_beauty ...]`: one run per `experiment=` preset;
- `--suite ml-100k`: the table of docs/RESULTS.md, every encoder x loss plus one row per encoder
  option, all with one seed; `--suite beauty`: the three Amazon Beauty presets.
Each run keeps its own folder under `--runs-dir` (default outputs/quality). A folder that already
holds metrics.json is reported again without training; one holding only checkpoints/last.pt (an
interrupted run) is resumed (`trainer.resume`, bit-exact on CPU), so a long suite can be stopped
and continued. `--markdown FILE` writes the table into FILE between markers, leaving the rest of
the file as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cold_start_benchmark import cold_markdown, cold_suites  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"

# Where each dataset's file lives under --data-root (research data: never bundled).
DATA_PATHS = {"amazon-beauty": "amazon-beauty/Beauty.txt", "ml-100k": "ml-100k", "ml-1m": "ml-1m"}

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

SHOWN = ("hr@10", "ndcg@10", "mrr")


def add_quality(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", nargs="+", help="experiment= presets to run, e.g. sasrec_beauty")
    which.add_argument("--suite", choices=sorted(SUITES), help="a named table of runs (docs/RESULTS.md)")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="overrides added to every run, e.g. trainer.patience=20",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=SHARED_DATA,
        help="folder holding the research datasets (default ../shared/data)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=REPO / "outputs" / "quality",
        help="one run folder per row; finished rows are reused, interrupted ones resumed",
    )
    parser.add_argument("--threads", type=int, default=None, help="trainer.num_threads for every run")
    parser.add_argument("--only", nargs="*", default=None, help="run only the rows whose label contains one of these")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table into this file between markers")


def experiment_rows(names: list[str], sets: list[str]) -> list[Row]:
    """One row per preset; the dataset name comes from composing the preset (and `sets`) with Hydra."""
    from hydra import compose, initialize_config_dir

    from seqrec_cli.config.registry import register_schemas

    register_schemas()
    rows = []
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for name in names:
            cfg = compose("train", overrides=[f"experiment={name}", *sets])
            rows.append(Row(name, [f"experiment={name}"], str(cfg.dataset.name)))
    return rows


def command_for(row: Row, args: argparse.Namespace) -> list[str]:
    """The seqrec-train overrides of a row, as a user would type them (the run folder aside)."""
    overrides = list(row.overrides)
    explicit = " ".join(args.set)
    if row.dataset in DATA_PATHS and "dataset.path=" not in explicit:
        overrides.append(f"dataset.path={_shown_path(args.data_root / DATA_PATHS[row.dataset])}")
    overrides += list(args.set)
    if args.threads:
        overrides.append(f"trainer.num_threads={args.threads}")
    return overrides


def run_row(row: Row, args: argparse.Namespace) -> dict:
    run_dir = args.runs_dir / row.label.replace(" / ", "__").replace(" + ", "+").replace(" ", "_")
    overrides = command_for(row, args)
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        resume = [f"trainer.resume={run_dir}"] if (run_dir / "checkpoints" / "last.pt").is_file() else []
        print(f"[{row.label}] seqrec-train {shlex.join(overrides)}" + ("  (resuming)" if resume else ""), flush=True)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "seqrec_cli.cli.train",
                *overrides,
                *resume,
                "trainer.progress=false",
                f"hydra.run.dir={run_dir}",
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if done.returncode != 0:
            raise SystemExit(f"[{row.label}] seqrec-train failed with exit code {done.returncode}")
    else:
        print(f"[{row.label}] reusing {run_dir}", flush=True)
    m = json.loads(metrics_file.read_text())
    return {
        "label": row.label,
        "dataset": row.dataset,
        "command": "seqrec-train " + shlex.join(_recorded_overrides(run_dir) or overrides),
        "seed": _seed(run_dir),
        "test": {k: round(m["test"][k], 4) for k in SHOWN},
        "popularity": {k: round(m["popularity"]["test"][k], 4) for k in SHOWN},
        "ndcg@10_vs_popularity": round(m["test"]["ndcg@10"] / max(m["popularity"]["test"]["ndcg@10"], 1e-12), 2),
        "best_epoch": m["best_epoch"],
        "epochs_run": m["epochs_run"],
        "train_minutes": round(m["train_seconds"] / 60, 1),
        "threads": m["num_threads"],
        "torch": m["torch_version"],
        "run_dir": str(run_dir),
    }


# Overrides that only say where a run lives or how it prints, not what it computes.
_BOOKKEEPING = ("trainer.resume=", "trainer.progress=", "hydra.run.dir=")


def _recorded_overrides(run_dir: Path) -> list[str]:
    """The overrides the run itself recorded (Hydra's .hydra/overrides.yaml, rewritten when a run
    is resumed): the table then states what the run really used, even when it was started by
    hand or resumed with other trainer settings than this invocation's."""
    from omegaconf import OmegaConf

    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    recorded = [str(o) for o in OmegaConf.load(path) if not str(o).startswith(_BOOKKEEPING)]
    return [
        f"dataset.path={_shown_path(Path(o.split('=', 1)[1]))}"
        if o.startswith("dataset.path=") and Path(o.split("=", 1)[1]).is_absolute()
        else o
        for o in recorded
    ]


def _shown_path(path: Path) -> str:
    """Paths under the checkout's parent as `../...`, the way the README's commands are written
    (runs start in the checkout, so the relative path is the same file)."""
    try:
        return str(Path("..") / path.resolve().relative_to(REPO.parent))
    except ValueError:
        return str(path)


def _seed(run_dir: Path) -> int:
    """The seed the run used (from its saved config), so the table states it even for presets."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    return int(cfg.trainer.seed)


def markdown_table(results: list[dict]) -> str:
    lines = [
        "| run | test HR@10 | test NDCG@10 | test MRR | popularity NDCG@10 | × popularity | best epoch | minutes "
        "| command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t, p = r["test"], r["popularity"]
        lines.append(
            f"| {r['label']} | {t['hr@10']:.4f} | {t['ndcg@10']:.4f} | {t['mrr']:.4f} | {p['ndcg@10']:.4f} | "
            f"{r['ndcg@10_vs_popularity']:.2f} | {r['best_epoch']}/{r['epochs_run']} | {r['train_minutes']} | "
            f"`{r['command']}` |"
        )
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        if dataset in PUBLISHED:
            lines += [
                "",
                f"Published on {dataset} (full ranking, leave-one-out):",
                "",
                "| model | HR@10 | NDCG@10 | source |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| {p['model']} | {p['hr@10']:.4f} | {p['ndcg@10']:.4f} | {p['source']} |" for p in PUBLISHED[dataset]
            ]
    return "\n".join(lines)


def write_section(path: Path, key: str, body: str) -> None:
    """Replace the text between `<!-- quality:KEY -->` and `<!-- /quality:KEY -->` (appending the
    section when absent); written through a temporary file so the document is never half-written."""
    start, end = f"<!-- quality:{key} -->", f"<!-- /quality:{key} -->"
    text = path.read_text() if path.is_file() else ""
    section = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_quality(args: argparse.Namespace) -> int:
    rows = SUITES[args.suite] if args.suite else experiment_rows(args.experiment, args.set)
    if args.only:
        rows = [r for r in rows if any(o in r.label for o in args.only)]
    for row in rows:
        path = DATA_PATHS.get(row.dataset)
        if path and not (args.data_root / path).exists() and "dataset.path=" not in " ".join(args.set):
            print(
                f"{row.dataset} is not at {args.data_root / path}: pass --data-root or --set dataset.path=...",
                file=sys.stderr,
            )
            return 2
    results = [run_row(row, args) for row in rows]
    table = cold_markdown(results) if (args.suite or "").startswith("cold-") else markdown_table(results)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "rows": results,
                    "published": {d: PUBLISHED[d] for d in {r["dataset"] for r in results} if d in PUBLISHED},
                },
                indent=2,
            )
            + "\n"
        )
    if args.markdown:
        write_section(args.markdown, args.suite or "+".join(args.experiment), table)
    return 0
