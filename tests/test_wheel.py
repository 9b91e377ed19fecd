"""The configs and bundled data are found from an installed (non-editable) wheel, outside the checkout."""

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from conftest import REPO


@pytest.mark.slow
def test_wheel_install_runs_the_smoke_config(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("seqrec_cli-*.whl")
    # Reuse the test environment's torch/hydra/pandas (its site-packages, appended by a .pth
    # file, whose own .pth hooks such as an editable install are *not* run) so no multi-GB
    # download is needed; the package itself comes only from the wheel.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "outer_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=600)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [str(py), "-c", "import seqrec_cli, sys; print(seqrec_cli.__file__)"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(env_dir) in where, where  # not the checkout
    script = env_dir / "bin" / "seqrec-train"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SEQREC_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [str(script), "debug=smoke", "hydra.run.dir=run"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2
    # The other commands find their configs (conf/eval.yaml, conf/recommend.yaml) in the wheel too.
    for command, args in (
        ("seqrec-eval", ["run=run"]),
        ("seqrec-recommend", ["run=run", "users=[1]"]),
        ("seqrec-report", ["run"]),
    ):
        result = subprocess.run(
            [str(env_dir / "bin" / command), *args], cwd=work, capture_output=True, text=True, timeout=600, env=env
        )
        assert result.returncode == 0, (command, result.stderr)
    assert json.loads((work / "run" / "eval_test.json").read_text())["metrics"] == metrics["test"]
    assert (work / "report.csv").is_file()
    # the bundled MovieLens file ships in the wheel too
    listing = subprocess.run(
        [
            str(py),
            "-c",
            "from seqrec_cli.data.sources import bundled_path; "
            "p = bundled_path('ml-latest-small'); print(p, p.stat().st_size)",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(env_dir) in listing and (listing.split()[1] != "0")
