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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cold_start_benchmark import cold_markdown  # noqa: E402
from quality_suites import PUBLISHED, SUITES, Row  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"

# Where each dataset's file lives under --data-root (research data: never bundled).
DATA_PATHS = {"amazon-beauty": "amazon-beauty/Beauty.txt", "ml-100k": "ml-100k", "ml-1m": "ml-1m"}

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
