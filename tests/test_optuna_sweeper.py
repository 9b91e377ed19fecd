"""The Optuna sweeper shipped in hydra_plugins/seqrec_optuna_sweeper: real CLI runs on tiny configs.

What each test proves is in its name; the PostgreSQL test starts its own throwaway server.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, run_cli

optuna = pytest.importorskip("optuna")
space = pytest.importorskip("hydra_plugins.seqrec_optuna_sweeper._space")

# One epoch of the smoke config, one thread: seconds per trial on a shared 2-core machine.
BASE = ["hparams_search=gru_optuna", "debug=smoke", "trainer.num_threads=1"]
TINY = [*BASE, "trainer.max_epochs=1"]
# Two grid points, one of which fails validation (lr must be > 0): a deterministic failed trial.
ONE_BAD_ONE_GOOD = ["hydra/sweeper/sampler=grid", "hydra.sweeper.params=null", "optimizer.lr=choice(-1,0.001)"]


def sweep_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "outputs" / "multirun").rglob("optimization_results.yaml"))


def load_results(sweep: Path) -> dict:
    import yaml

    return yaml.safe_load((sweep / "optimization_results.yaml").read_text())


def stored_trials(url: str, name: str) -> list:
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def test_search_space_syntax_maps_to_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    parsed = space.parse_search_space(
        [
            "a=interval(0.1, 0.5)",
            "b=int(interval(1, 8))",
            "c=tag(log, interval(0.0001, 0.01))",
            "d=tag(log, int(interval(16, 256)))",
            "e=choice(32, 64)",
            "f=range(1, 5)",
            "g=shuffle(range(1, 4))",
            "h=gru,lstm",
            "trainer.max_epochs=3",
            "~x",
            "a=interval(0.2, 0.3)",  # the later `a` wins
        ]
    )
    d = parsed.distributions
    assert d["a"] == FloatDistribution(0.2, 0.3)
    assert d["b"] == IntDistribution(1, 8)
    assert d["c"] == FloatDistribution(0.0001, 0.01, log=True)
    assert d["d"] == IntDistribution(16, 256, log=True)
    assert d["e"] == CategoricalDistribution([32, 64])
    assert d["f"] == IntDistribution(1, 4)  # Hydra's range: the end is excluded
    assert sorted(d["g"].choices) == [1, 2, 3] and d["h"] == CategoricalDistribution(["gru", "lstm"])
    assert parsed.fixed_overrides() == ["trainer.max_epochs=3", "~x"]
    assert space.override_value(True) == "true" and space.override_value(None) == "null"


@pytest.mark.filterwarnings("ignore:QMCSampler is experimental")
def test_every_sampler_builds_and_a_stored_study_moves_the_seed_on():
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from hydra_plugins.seqrec_optuna_sweeper import _study, config

    repo = ConfigStore.instance().repo["hydra"]["sweeper"]
    assert {"seqrec_optuna.yaml", "optuna.yaml"} <= set(repo)  # `optuna`: commands written for the old plugin
    grid = space.parse_search_space(["a=choice(1,2)", "b=int(interval(1,3))"])
    for name, node in config.SAMPLERS.items():
        sampler = _study.build_sampler(OmegaConf.structured(node), grid, seed_offset=0)
        assert isinstance(sampler, optuna.samplers.BaseSampler), name
    first = _study.build_sampler(OmegaConf.structured(config.RandomSamplerConfig(seed=7)), grid, seed_offset=0)
    again = _study.build_sampler(OmegaConf.structured(config.RandomSamplerConfig(seed=7)), grid, seed_offset=0)
    moved = _study.build_sampler(OmegaConf.structured(config.RandomSamplerConfig(seed=7)), grid, seed_offset=3)
    draws = [optuna.create_study(sampler=s).ask().suggest_int("x", 0, 1 << 30) for s in (first, again, moved)]
    assert draws[0] == draws[1] != draws[2]


@pytest.mark.parametrize(
    "line, words",
    [
        ("lr=interval(0.01, 0.0001)", "is empty: its lower end 0.01 is above its upper end 0.0001"),
        ("lr=tag(log, interval(0, 1))", "log-scaled interval needs a lower end above 0"),
        ("lr=range(5, 1)", "is empty"),
        ("lr=interval(0.1", "Cannot read the search-space entry"),
        ("encoder=glob(*)", "cannot be searched by Optuna"),
    ],
)
def test_bad_search_space_entries_are_one_sentence(line, words):
    with pytest.raises(space.SearchSpaceError) as caught:
        space.parse_search_space([line])
    message = str(caught.value)
    assert words in message and "\n" not in message and message.endswith(".")


@pytest.mark.parametrize(
    "override, words",
    [
        ("optimizer.lr=interval(0.01,0.0001)", "is empty: its lower end 0.01 is above its upper end 0.0001."),
        pytest.param(
            "model.embedding_dim=interval(8,32)",
            "could not be converted to Integer",  # int(interval(...))
            marks=pytest.mark.slow,
        ),
    ],
)
def test_bad_search_space_ends_with_one_sentence_and_exit_2(tmp_path, override, words):
    result = run_cli([*TINY, override], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert words in output and "Traceback" not in output
    assert not (tmp_path / "outputs").exists()  # refused before any trial ran


def test_failed_trial_is_recorded_and_the_study_goes_on(tmp_path):
    url = "sqlite:///study.db"
    result = run_cli([*TINY, *ONE_BAD_ONE_GOOD, f"hydra.sweeper.storage={url}"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1), output  # 1: the sweep summary's "a job failed"
    assert "Traceback" not in output and "Trial " in output and "failed: Invalid config value optimizer.lr" in output
    trials = stored_trials(f"sqlite:///{tmp_path / 'study.db'}", "gru")
    by_state = {t.state.name: t for t in trials}
    assert sorted(by_state) == ["COMPLETE", "FAIL"]
    assert by_state["FAIL"].params == {"optimizer.lr": -1}
    assert "optimizer.lr" in by_state["FAIL"].user_attrs["error"]
    (sweep,) = sweep_dirs(tmp_path)
    results = load_results(sweep)
    assert results["best_params"] == {"optimizer.lr": 0.001} and results["best_value"] > 0
    assert results["trials"] == {"complete": 1, "fail": 1}
    rows = list(csv.DictReader((sweep / "summary.csv").open()))  # the SweepSummary callback still runs
    assert any(r["status"] == "ok" and "optimizer.lr=0.001" in r["overrides"] for r in rows)


@pytest.mark.slow
def test_rerunning_the_command_resumes_the_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = [*TINY, f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=resume"]
    first = run_cli([*args, "hydra.sweeper.n_trials=2", "hydra.sweep.dir=first"], tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_cli([*args, "hydra.sweeper.n_trials=3", "hydra.sweep.dir=second"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert "2 of n_trials=3 already counted" in second.stdout
    trials = stored_trials(url, "resume")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 3  # the re-run did not repeat trial 0
    assert load_results(tmp_path / "second")["this_run"]["trials"] == [2]
    assert len(list((tmp_path / "second").glob("[0-9]*"))) == 1  # one job launched
    third = run_cli([*args, "hydra.sweeper.n_trials=3", "hydra.sweep.dir=third"], tmp_path)
    assert third.returncode == 0, third.stderr
    assert "already holds its n_trials=3 trials: nothing to run" in third.stdout
    results = load_results(tmp_path / "third")  # the study's best, though this run ran nothing
    assert results["trials"] == {"complete": 3} and results["best_trial"] in (0, 1, 2)


@pytest.mark.slow
def test_an_interrupted_trial_is_queued_again_and_run_by_the_next_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = [*BASE, f"hydra.sweeper.storage={url}", "hydra.sweeper.n_trials=1", "trainer.max_epochs=50"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqrec_cli.cli.train", *args, "hydra.sweep.dir=cut"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for(lambda: list((tmp_path / "cut").rglob("history.csv")), proc, timeout=120)
    proc.terminate()  # SIGTERM mid-training
    output = proc.communicate(timeout=120)[0]
    assert "queued again" in output, output
    cut, queued = stored_trials(url, "gru")
    assert (cut.state.name, queued.state.name) == ("FAIL", "WAITING")
    rerun = run_cli(
        [*TINY, f"hydra.sweeper.storage={url}", "hydra.sweeper.n_trials=1", "hydra.sweep.dir=again"], tmp_path
    )
    assert rerun.returncode == 0, rerun.stderr
    first, retry = stored_trials(url, "gru")
    assert retry.state.name == "COMPLETE" and retry.params == first.params and retry.user_attrs["retry_of"] == 0


@pytest.mark.slow
def test_the_plugin_ships_in_the_wheel(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("seqrec_cli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("__init__", "config", "optuna_sweeper", "_impl", "_space", "_study", "_trials"):
        assert f"hydra_plugins/seqrec_optuna_sweeper/{module}.py" in names
    assert "hydra_plugins/__init__.py" not in names  # a namespace package, shared with other plugins


# --- PostgreSQL: a throwaway server, two processes on one study --------------------------------


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def _as_server_user(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as `postgres` then."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    pytest.importorskip("psycopg", reason="psycopg (the tune extra's PostgreSQL driver) is not installed")
    if os.geteuid() == 0 and (shutil.which("runuser") is None or _no_user("postgres")):
        pytest.skip("running as root without a `postgres` user to run the server as")
    root = Path(tempfile.mkdtemp(prefix="seqrec-pg-"))  # outside pytest's 0700 tmp dirs: the server user reads it
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = _free_port()
    subprocess.run(
        _as_server_user(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "optuna", "--auth=trust", "-E", "UTF8", "--no-sync"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c fsync=off"
    subprocess.run(
        _as_server_user(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "-l",
                str(root / "server.log"),
                "start",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"postgresql://optuna@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def _no_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return True
    return False


def _env(cwd: Path) -> dict:
    env = {
        **os.environ,
        "SEQREC_CACHE_DIR": str(cwd / ".cache"),
        "SEQREC_DATA_DIR": str(cwd / ".data"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _wait_for(condition, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_two_processes_share_one_postgresql_study(tmp_path, postgres_url):
    n_trials = 4
    procs = []
    for worker in ("a", "b"):  # different seeds, as the README says for workers started together
        args = [
            *TINY,
            f"hydra.sweeper.storage={postgres_url}",
            "hydra.sweeper.study_name=shared",
            f"hydra.sweeper.n_trials={n_trials}",
            f"hydra.sweeper.sampler.seed={ord(worker)}",
            f"hydra.sweep.dir={worker}",
        ]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "seqrec_cli.cli.train", *args],
                cwd=tmp_path,
                env=_env(tmp_path),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output
    trials = stored_trials(postgres_url, "shared")
    # Each worker stops once the study holds n_trials; two asking at the same instant may add one each.
    assert n_trials <= len(trials) <= n_trials + 1
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    ran = [load_results(tmp_path / w)["this_run"]["trials"] for w in ("a", "b")]
    assert all(ran) and not set(ran[0]) & set(ran[1])  # both worked, never on the same trial
    assert sorted(ran[0] + ran[1]) == list(range(len(trials)))
    assert {t.user_attrs["pid"] for t in trials} == {p.pid for p in procs}
    a_trials, b_trials = ([t for t in trials if t.user_attrs["pid"] == p.pid] for p in procs)
    assert any(
        x.datetime_start < y.datetime_complete and y.datetime_start < x.datetime_complete
        for x in a_trials
        for y in b_trials
    )  # at once: some trials of the two ran at the same time
    assert all(load_results(tmp_path / w)["best_value"] is not None for w in ("a", "b"))
