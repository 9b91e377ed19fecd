"""seqrec-serve: bad requests are 4xx JSON and never stop the server; the real server process
answers, reloads a bundle without dropping requests, refuses a tampered one, and stops."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO
from serving_support import bundle, trained_runs
from test_bundle import bundle_top_for_history

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from seqrec_cli.serving.app import create_app  # noqa: E402
from seqrec_cli.serving.config import ServeAppConfig  # noqa: E402
from seqrec_cli.serving.engine import open_bundle  # noqa: E402


def bad_bodies(rng: random.Random, n_items: int, known_item: int, known_user: int) -> list[tuple[bytes, str]]:
    """(body, what is wrong) pairs: every kind of mistake, with random values mixed in."""

    def js(obj) -> bytes:
        return json.dumps(obj).encode()

    wrong_values = [None, True, 1.5, "x", "", [], {}, [None], [[1]], [1.5], [True], {"a": 1}, -1, 0, 10**12]
    fields = ["user", "history", "k", "exclude_seen", "candidates", "exclude", "on_unknown", "explain"]
    fixed = [
        (b"", "empty body"),
        (b"{", "truncated"),
        (b"not json", "text"),
        (b"\xff\xfe\x00", "binary"),
        (b"[" * 100_000 + b"]" * 100_000, "deep nesting"),
        (js([]), "a list"),
        (js(5), "a number"),
        (js(None), "null"),
        (js({}), "no user, no history"),
        (js({"k": 5}), "no history"),
        (js({"user": known_user, "history": [1]}), "both"),
        (js({"user": "no-such-user"}), "unknown user"),
        (js({"history": []}), "empty history"),
        (js({"history": ["no-such-item"]}), "unknown item"),
        (js({"history": [known_item], "k": 0}), "k = 0"),
        (js({"history": [known_item], "k": n_items + 1}), "k > catalogue"),
        (js({"history": [known_item], "kk": 1}), "unknown field"),
        (js({"history": [known_item], "candidates": ["no-such-item"], "on_unknown": "skip"}), "no known candidate"),
        (js({"history": [known_item] * 20_000}), "too many ids"),
        (js({"history": ["x" * 5000] * 300}), "oversized"),
    ]
    out = list(fixed)
    while len(out) < 1200:
        body = {"history": [known_item]} if rng.random() < 0.5 else {"user": known_user}
        field = rng.choice(fields)
        value = rng.choice(wrong_values)
        if field in ("exclude_seen", "explain") and isinstance(value, bool):
            value = "true"
        if field in ("candidates", "exclude") and (value is None or value == []):
            value = 7.5
        if field in ("user", "history") and field not in body:
            body = {}  # neither or the wrong one only
        if field == "k" and value is True:
            value = "3"
        if field == "user" and isinstance(value, int) and not isinstance(value, bool):
            value = -1  # 0 may be a real user id
        body[field] = value
        raw = js(body)
        if rng.random() < 0.2:
            raw = raw[: rng.randrange(1, len(raw))]  # cut short: invalid JSON
        out.append((raw, f"{field}={value!r}"))
    return out


def test_a_thousand_bad_requests_are_4xx_json_and_the_next_good_one_is_answered(tmp_path_factory):
    path = bundle(tmp_path_factory, "attention")
    b = open_bundle(path)
    known_item, known_user = b.item_ids[1], next(iter(b.histories.index))
    app = create_app(b, ServeAppConfig(max_body_bytes=65_536), sighup=False)
    bodies = bad_bodies(random.Random(0), b.n_items, known_item, known_user)
    with TestClient(app, raise_server_exceptions=False) as client:
        for n, (raw, what) in enumerate(bodies):
            for url in ("/recommend", "/recommend/batch")[: 1 + (n % 6 == 0)]:  # every sixth also as a batch
                payload = raw if url == "/recommend" or not raw.startswith(b"{") else b'{"requests": [' + raw + b"]}"
                r = client.post(url, content=payload, headers={"content-type": "application/json"})
                assert 400 <= r.status_code < 500, (what, url, r.status_code, r.text[:300])
                error = r.json()["error"]
                assert isinstance(error, str) and error, (what, r.text[:300])
        history = [str(b.item_ids[r]) for r in b.histories.of(0)[0][-6:]]
        good = client.post("/recommend", json={"history": history, "k": 5})
        assert good.status_code == 200, good.text
        assert [str(i["item"]) for i in good.json()["items"]] == bundle_top_for_history(path, history, 5)
        assert client.get("/health").json()["status"] == "ok"


def test_messages_name_the_problem(tmp_path_factory):
    b = open_bundle(bundle(tmp_path_factory, "attention"))
    item = b.item_ids[1]
    with TestClient(create_app(b, ServeAppConfig(max_body_bytes=1000), sighup=False)) as client:

        def error(body, status):
            r = client.post("/recommend", content=body if isinstance(body, bytes) else json.dumps(body))
            assert r.status_code == status, r.text
            return r.json()["error"]

        assert "not valid JSON" in error(b"{", 400)
        assert "larger than this server accepts" in error(b"[" + b"1," * 600 + b"1]", 413)
        assert "Unknown user id nobody" in error({"user": "nobody"}, 404)
        assert "k=0 is out of range" in error({"history": [item], "k": 0}, 422)
        assert "k must be an integer, not a string" in error({"history": [item], "k": "5"}, 422)
        assert "history is empty" in error({"history": []}, 422)
        assert "Unknown item id in history: zzz" in error({"history": [item, "zzz"]}, 422)
        assert "exactly one of" in error({"k": 3}, 422)
        ok = client.post("/recommend", json={"history": [item, "zzz"], "on_unknown": "skip", "k": 3}).json()
        assert ok["skipped_unknown"] == ["zzz"] and len(ok["items"]) == 3
        long = [str(b.item_ids[r]) for r in range(1, 31)]  # longer than max_len = 20: the newest 20 are used
        answer = client.post("/recommend", json={"history": long, "k": 5}).json()
        assert answer["history_used"] == 20 and not {str(i["item"]) for i in answer["items"]} & set(long)


# ------------------------------------------------------------------------------ the real server


class Server:
    """`python -m seqrec_cli.cli.serve` on a free 127.0.0.1 port; always stopped by the test."""

    def __init__(self, args: list[str], cwd: Path, env: dict | None = None) -> None:
        self.log = cwd / f"serve-{time.monotonic_ns()}.log"
        env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "seqrec_cli.cli.serve", "port=0", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        self.url = ""

    def wait_ready(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text()
            match = re.search(r"http://127\.0\.0\.1:(\d+)", text)
            if match and "startup complete" in text:
                self.url = f"http://127.0.0.1:{match.group(1)}"
                return self.url
            assert self.proc.poll() is None, text
            time.sleep(0.2)
        raise AssertionError(f"server not ready: {self.log.read_text()}")

    def call(self, path: str, body=None, raw: bytes | None = None) -> tuple[int, dict]:
        """(status, JSON answer) of GET `path`, or POST of `body` as JSON (or of the bytes `raw`)."""
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method="POST" if data is not None else "GET",
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


@pytest.fixture
def server_factory(tmp_path):
    servers: list[Server] = []

    def start(*args: str, env: dict | None = None) -> Server:
        servers.append(Server(list(args), tmp_path, env))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def test_the_server_answers_reloads_without_dropping_requests_and_stops(tmp_path_factory, tmp_path, server_factory):
    first, second = bundle(tmp_path_factory, "attention"), bundle(tmp_path_factory, "gru")
    server = server_factory(f"bundle={first}")
    server.wait_ready()
    status, health = server.call("/health")
    assert status == 200 and health["bundle"] == open_bundle(first).digest
    user = next(iter(open_bundle(first).histories.index))
    status, answer = server.call("/recommend", {"user": user, "k": 3, "explain": True})
    assert status == 200 and str(answer["user"]) == user and len(answer["items"]) == 3
    assert all("because" in item for item in answer["items"])
    items = open_bundle(first).item_ids[1:3]
    status, batch = server.call("/recommend/batch", {"requests": [{"user": user}, {"history": items, "k": 2}]})
    assert status == 200 and [len(r["items"]) for r in batch["results"]] == [10, 2]
    assert server.call("/metadata")[1]["encoder"]["name"] == "attention"

    # Bad bodies through the real HTTP stack too (those under the body limit: a server answering 413
    # before reading a body may close the connection while the client still writes it).
    bodies = bad_bodies(random.Random(1), open_bundle(first).n_items, items[0], user)
    bodies = [(raw, what) for raw, what in bodies if len(raw) < 500_000]
    for raw, what in bodies[:80]:
        status, error = server.call("/recommend", raw=raw)
        assert 400 <= status < 500 and error["error"], (what, status, error)
    status, again = server.call("/recommend", {"user": user, "k": 3})  # still serving, the same answer
    assert status == 200 and [i["item"] for i in again["items"]] == [i["item"] for i in answer["items"]]

    # Requests keep flowing while the bundle is swapped: none may fail.
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            statuses.append(server.call("/recommend", {"user": user, "k": 5})[0])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    status, reloaded = server.call("/admin/reload", {"bundle": str(second)})
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert status == 200 and reloaded["digest"] == open_bundle(second).digest, reloaded
    assert statuses and set(statuses) == {200}
    assert server.call("/metadata")[1]["encoder"]["name"] == "gru"

    tampered = tmp_path / "tampered"
    shutil.copytree(first, tampered)
    (tampered / "items.json").write_text((tampered / "items.json").read_text().replace("null", "0", 1))
    status, refused = server.call("/admin/reload", {"bundle": str(tampered)})
    assert status == 422 and "SHA-256" in refused["error"]
    assert server.call("/health")[1]["bundle"] == open_bundle(second).digest  # still the good one

    server.proc.send_signal(signal.SIGHUP)  # reload the bundle now served, read again
    deadline = time.monotonic() + 30
    while server.call("/health")[1]["reloads"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.call("/health")[1]["reloads"] == 2
    assert server.stop() == 0  # SIGTERM: a graceful shutdown
    assert "Finished server process" in server.log.read_text()


def test_run_dir_is_exported_on_the_fly_and_its_temporary_bundle_removed_at_stop(
    tmp_path_factory, tmp_path, server_factory
):
    run = trained_runs(tmp_path_factory, ("attention",))["attention"]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    server = server_factory(f"run={run}", env={"TMPDIR": str(scratch)})
    server.wait_ready()

    def exported() -> list[Path]:  # torch's own caches may go to TMPDIR too
        return [p for p in scratch.iterdir() if p.name.startswith("seqrec-serve-")]

    assert exported() and server.call("/metadata")[1]["source_run"]["path"] == str(run)
    b = open_bundle(bundle(tmp_path_factory, "attention"))  # the same run, exported in this process
    history = [str(b.item_ids[r]) for r in b.histories.of(2)[0]]
    status, answer = server.call("/recommend", {"history": history, "k": 5})
    assert status == 200 and [str(i["item"]) for i in answer["items"]] == bundle_top_for_history(b.path, history, 5)
    assert server.stop() == 0
    assert not exported()  # the temporary bundle is gone


def test_a_tampered_bundle_is_refused_at_start(tmp_path_factory, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle(tmp_path_factory, "attention"), tampered)
    with (tampered / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    result = subprocess.run(
        [sys.executable, "-m", "seqrec_cli.cli.serve", f"bundle={tampered}", "port=0"],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    said = " ".join(result.stderr.split())  # the console wraps long lines
    assert "model.onnx does not match its SHA-256" in said and "Traceback" not in said
