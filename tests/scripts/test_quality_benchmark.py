"""`benchmark.py quality`: real runs reported beside the published numbers; reruns reuse them."""

import json
import os
import subprocess
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from quality_benchmark import PUBLISHED, SUITES, markdown_table, write_section  # noqa: E402


def quality(tmp_path, *extra):
    env = {**os.environ, "SEQREC_CACHE_DIR": str(tmp_path / ".cache")}
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "benchmark.py"),
            "quality",
            "--experiment",
            "sasrec_beauty",
            "--set",
            "debug=smoke",
            "trainer.max_epochs=1",
            "--runs-dir",
            str(tmp_path / "runs"),
            *extra,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_quality_runs_a_preset_and_reports_it_beside_published_numbers(tmp_path):
    doc = tmp_path / "RESULTS.md"
    doc.write_text("# Results\n\nkept text\n")
    first = quality(tmp_path, "--out", str(tmp_path / "q.json"), "--markdown", str(doc))
    assert first.returncode == 0, first.stderr
    (row,) = json.loads((tmp_path / "q.json").read_text())["rows"]
    assert row["command"].startswith("seqrec-train experiment=sasrec_beauty debug=smoke")
    assert row["seed"] == 42 and row["epochs_run"] == 1
    assert 0 <= row["test"]["ndcg@10"] <= 1 and row["popularity"]["ndcg@10"] > 0
    text = doc.read_text()
    assert "kept text" in text and "| sasrec_beauty |" in text
    # a second run reuses the finished run folder and replaces (not duplicates) the section
    second = quality(tmp_path, "--markdown", str(doc))
    assert second.returncode == 0, second.stderr
    assert "reusing" in second.stdout
    assert doc.read_text().count("<!-- quality:sasrec_beauty -->") == 1


def test_published_rows_appear_under_the_table_for_their_dataset():
    row = {
        "label": "x",
        "dataset": "amazon-beauty",
        "command": "seqrec-train experiment=sasrec_beauty",
        "test": {"hr@10": 0.1, "ndcg@10": 0.06, "mrr": 0.05},
        "popularity": {"hr@10": 0.01, "ndcg@10": 0.006, "mrr": 0.005},
        "ndcg@10_vs_popularity": 10.0,
        "best_epoch": 3,
        "epochs_run": 5,
        "train_minutes": 1.0,
    }
    table = markdown_table([row])
    assert "| x | 0.1000 | 0.0600 | 0.0500 | 0.0060 | 10.00 | 3/5 |" in table
    assert all(p["source"] in table for p in PUBLISHED["amazon-beauty"])


def test_write_section_appends_then_replaces(tmp_path):
    doc = tmp_path / "d.md"
    write_section(doc, "k", "one")
    write_section(doc, "k", "two")
    assert doc.read_text() == "<!-- quality:k -->\ntwo\n<!-- /quality:k -->\n"


def test_ml100k_suite_covers_every_encoder_loss_pair_and_each_option():
    labels = [r.label for r in SUITES["ml-100k"]]
    for enc in ("attention", "gru", "lstm"):
        for loss in ("ce", "sampled_softmax"):
            assert f"{enc} / {loss}" in labels
    assert any("gru_attention" in label for label in labels)
    assert any("time gaps" in label for label in labels) and any("user vectors" in label for label in labels)
    assert all("trainer.seed=42" in r.overrides for r in SUITES["ml-100k"])
