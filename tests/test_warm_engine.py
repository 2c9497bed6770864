"""The warm engine: ``python -m icon_engine serve`` (engine side) and the add-on's :class:`EngineServer` (client).

The client tests drive a small fake server speaking the same protocol (fast, deterministic); the engine-side tests
run the real server in-process on bad input and, marked slow, on the sample photo in a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from icon_blender.core import engine_proc as ep
from icon_engine.server import WarmEngine

ROOT = Path(__file__).resolve().parents[1]

FAKE_SERVER = textwrap.dedent(
    """
    import json, os, sys, time
    assert sys.argv[1:] == ["-m", "icon_engine", "serve"], sys.argv
    def emit(**kw):
        print(json.dumps(kw), flush=True)
    emit(event="ready", engine_version="fake")
    with open(os.environ["FAKE_PIDS"], "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] != "run":
            continue
        job, argv = req["job"], req["argv"]
        photo = os.path.basename(argv[1])
        emit(event="progress", job=job, photo=photo, stage="fit", fraction=0.5, overall=0.3, message="Fitting")
        if photo == "crash.jpg":
            sys.exit(1)
        if photo == "stuck.jpg":
            time.sleep(120)
        out = os.path.join(argv[argv.index("--out") + 1], "bundle")
        emit(event="done", job=job, photo=photo, bundle=out)
        emit(event="finished", job=job, status="done", exit_code=0)
    """
)


@pytest.fixture()
def server(tmp_path: Path):
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)
    python = tmp_path / "python"  # an "interpreter" that runs the fake server
    python.write_text(f'#!/bin/sh\nshift 2\nexec "{sys.executable}" "{script}" -m icon_engine "$@"\n')
    python.chmod(0o755)
    env = dict(os.environ, FAKE_PIDS=str(tmp_path / "pids"))
    srv = ep.EngineServer(str(python), env)
    yield srv
    srv.close()


def job(srv: ep.EngineServer, photo: str, out: Path) -> ep.EngineJob:
    cmd = ep.reconstruct_command(srv.python, out / photo, out, ep.ReconstructOptions())
    return ep.EngineJob(cmd, photo, server=srv, out_dir=out)


def pids(tmp_path: Path) -> list[int]:
    return [int(p) for p in (tmp_path / "pids").read_text().split()]


def test_jobs_share_one_process(server, tmp_path):
    first, second = job(server, "a.jpg", tmp_path / "a"), job(server, "b.jpg", tmp_path / "b")
    for j in (first, second):
        j.start()
        j.wait(timeout=30)
        assert j.state == ep.DONE and j.bundles and j.returncode == 0
    assert server.starts == 1 and len(pids(tmp_path)) == 1


def test_a_crash_fails_its_job_and_the_next_job_restarts_the_engine(server, tmp_path):
    crashed = job(server, "crash.jpg", tmp_path / "c")
    crashed.start()
    crashed.wait(timeout=30)
    assert crashed.state == ep.FAILED and crashed.error["code"] == "engine_crash"
    after = job(server, "a.jpg", tmp_path / "a")
    after.start()
    after.wait(timeout=30)
    assert after.state == ep.DONE and server.starts == 2


def test_cancel_of_a_stuck_job_restarts_the_engine_within_the_grace_time(server, tmp_path):
    stuck = job(server, "stuck.jpg", tmp_path / "s")
    stuck.start()
    while stuck.stage != "fit":  # the job is running inside the engine
        stuck.poll()
        time.sleep(0.02)
    first = pids(tmp_path)[0]
    stuck.cancel(timeout=1.0)
    assert stuck.state == ep.CANCELLED
    deadline = time.monotonic() + 10
    while server.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.alive  # killed by the watchdog: it did not stop by itself
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)
    nxt = job(server, "a.jpg", tmp_path / "a")
    nxt.start()
    nxt.wait(timeout=30)
    assert nxt.state == ep.DONE and server.starts == 2


def test_closing_the_pipe_ends_the_engine(server, tmp_path):
    j = job(server, "a.jpg", tmp_path / "a")
    j.start()
    j.wait(timeout=30)
    proc = server._proc
    server.close(timeout=5)
    assert proc is not None and proc.poll() is not None


def test_parse_line_knows_the_warm_engine_events():
    assert ep.parse_line('{"event": "finished", "job": "x", "status": "done", "exit_code": 0}').kind == "finished"
    assert ep.parse_line('{"event": "ready", "engine_version": "1"}').kind == "ready"


# ----------------------------------------------------------------------------------------------------------------
# engine side


def run_server(*requests: dict, jobs: int) -> list[dict]:
    """Feed ``requests`` to an in-process server, keep its input open until ``jobs`` jobs finished, then close it."""
    stdout = io.StringIO()

    def stdin():
        yield from (json.dumps(r) + "\n" for r in requests)
        yield "not json\n"
        yield "[" * 100_000 + "]" * 100_000 + "\n"  # nested past json's depth limit: a bad request, not the end
        deadline = time.monotonic() + 60
        while stdout.getvalue().count('"event":"finished"') < jobs and time.monotonic() < deadline:
            time.sleep(0.01)

    engine = WarmEngine(stdin(), stdout)
    engine._warm_up = lambda: None  # no model loading for protocol tests
    assert engine.serve() == 0
    return [json.loads(line) for line in stdout.getvalue().splitlines()]


def test_server_reports_bad_input_per_job_and_keeps_serving(tmp_path):
    events = run_server(
        {"op": "run", "job": "1", "argv": ["reconstruct", str(tmp_path / "missing.jpg"), "--out", str(tmp_path)]},
        {"op": "run", "job": "2", "argv": ["doctor"]},
        {"op": "dance"},
        {"op": "run", "job": "3", "argv": ["reconstruct", str(tmp_path / "missing.jpg"), "--out", str(tmp_path)]},
        jobs=2,
    )
    assert events[0]["event"] == "ready"
    errors = {e.get("job"): e for e in events if e["event"] == "error"}
    assert errors["1"]["code"] == "photo_missing" and errors["3"]["code"] == "photo_missing"
    assert errors["2"]["code"] == "usage" and "reconstruct" in errors["2"]["message"]
    assert any(e["event"] == "error" and "dance" in e["message"] for e in events)
    assert sum(e["event"] == "error" and "Bad request" in e["message"] for e in events) == 2
    finished = [e for e in events if e["event"] == "finished"]
    assert [(e["job"], e["status"], e["exit_code"]) for e in finished] == [("1", "failed", 3), ("3", "failed", 3)]


@pytest.mark.slow
def test_real_server_runs_two_jobs_and_cancels_a_third(tmp_path):
    from icon_engine.sample import sample_photo_path

    photo = str(sample_photo_path())
    proc = subprocess.Popen([sys.executable, "-m", "icon_engine", "serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdin is not None and proc.stdout is not None

    def send(obj: dict) -> None:
        proc.stdin.write(json.dumps(obj) + "\n")
        proc.stdin.flush()

    def until(pred) -> dict:
        for line in proc.stdout:
            event = json.loads(line)
            if pred(event):
                return event
        raise AssertionError("the server ended early")

    try:
        until(lambda e: e["event"] == "warm")
        for name in ("one", "two"):
            send({"op": "run", "job": name, "argv": ["reconstruct", photo, "--out", str(tmp_path / name),
                                                     "--quality", "preview", "--no-texture"]})
            done = until(lambda e: e["event"] == "finished")
            assert done == {"event": "finished", "job": name, "status": "done", "exit_code": 0}
            assert len(list((tmp_path / name).glob("*/bundle.json"))) == 1
        send({"op": "run", "job": "three", "argv": ["reconstruct", photo, "--out", str(tmp_path / "three"),
                                                    "--quality", "preview"]})
        until(lambda e: e["event"] == "progress" and e["job"] == "three" and e["stage"] == "fit")
        send({"op": "cancel", "job": "three"})
        done = until(lambda e: e["event"] == "finished")
        assert done["job"] == "three" and done["status"] == "cancelled"
        assert not list((tmp_path / "three").glob("*/bundle.json"))
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0


def test_end_of_input_cancels_the_queued_jobs(tmp_path):
    """Blender quit or crashed: the pipe closes, nothing more runs, and the server exits."""
    stdout = io.StringIO()
    argv = ["reconstruct", str(tmp_path / "missing.jpg"), "--out", str(tmp_path)]
    engine = WarmEngine(iter([json.dumps({"op": "run", "job": str(i), "argv": argv}) + "\n" for i in range(3)]), stdout)
    engine._warm_up = lambda: None
    assert engine.serve() == 0
    finished = [json.loads(line) for line in stdout.getvalue().splitlines() if '"finished"' in line]
    assert [e["status"] for e in finished] == ["cancelled"] * 3


def test_warm_up_imports_every_stage_module():
    """The warm-up's stage imports exist (a wrong name would only print 'warm-up skipped' and cost the first job)."""
    from icon_engine.server import STAGE_MODULES, import_stages

    import_stages()
    assert all(name in sys.modules for name in STAGE_MODULES)
