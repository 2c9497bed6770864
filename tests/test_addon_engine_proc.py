"""The add-on's engine-process handling (no bpy): command lines, JSON-lines parsing, jobs, cancel, queue,
environment set-up — driven by a tiny fake engine script that speaks the engine's protocol."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from icon_blender.core import engine_proc as ep
from icon_blender.core import env_setup

FAKE_ENGINE = textwrap.dedent(
    """
    import json, os, sys, time
    args = sys.argv[1:]
    photo = os.path.basename(args[args.index("reconstruct") + 1])
    out = args[args.index("--out") + 1]
    def emit(**kw):
        print(json.dumps(kw), flush=True)
    if photo == "ok.jpg":
        for stage, overall in (("load", 0.0), ("fit", 0.3), ("bundle", 0.97)):
            emit(event="progress", photo=photo, stage=stage, fraction=0.5, overall=overall, message=stage + "ing")
        print("a diagnostic line", flush=True)
        emit(event="warning", photo=photo, message="the person touches the border")
        os.makedirs(os.path.join(out, "ok"), exist_ok=True)
        emit(event="done", photo=photo, bundle=os.path.join(out, "ok"))
    elif photo == "fail.jpg":
        emit(event="progress", photo=photo, stage="detect", fraction=0.0, overall=0.02, message="Detecting")
        emit(event="error", photo=photo, code="no_person", message="No person found in fail.jpg.",
             hint="Use a photo with one person whose body is visible.")
        sys.exit(4)
    elif photo == "crash.jpg":
        print("Traceback (most recent call last):", file=sys.stderr)
        print("ZeroDivisionError: division by zero", file=sys.stderr, flush=True)
        sys.exit(1)
    elif photo == "slow.jpg":
        with open(os.path.join(out, "pid"), "w") as fh:
            fh.write(str(os.getpid()))
        emit(event="progress", photo=photo, stage="fit", fraction=0.1, overall=0.2, message="Fitting")
        time.sleep(120)
    """
)


@pytest.fixture()
def fake(tmp_path) -> Path:
    script = tmp_path / "fake_engine.py"
    script.write_text(FAKE_ENGINE)
    return script


def fake_job(script: Path, photo: str, out: Path, **kw) -> ep.EngineJob:
    cmd = ep.reconstruct_command(sys.executable, out / photo, out, ep.ReconstructOptions())
    cmd[1:3] = [str(script)]  # python fake_engine.py reconstruct PHOTO --out OUT ...
    return ep.EngineJob(cmd, photo, **kw)


def test_reconstruct_command_follows_the_cli():
    opts = ep.ReconstructOptions(quality="high", texture=False, rest_pose="A", person=2, device="cuda",
                                 smplx_model="/m/SMPLX_NEUTRAL.npz", icon_data="/d")
    cmd = ep.reconstruct_command("/env/bin/python", "/p/me.jpg", "/out", opts)
    assert cmd[:6] == ["/env/bin/python", "-m", "icon_engine", "reconstruct", "/p/me.jpg", "--out"]
    joined = " ".join(cmd)
    for part in ("--progress json", "--quality high", "--device cuda", "--person 2", "--no-texture",
                 "--rest-pose A", "--smplx-model /m/SMPLX_NEUTRAL.npz", "--icon-data /d"):
        assert part in joined
    default = " ".join(ep.reconstruct_command("py", "a.jpg", "o", ep.ReconstructOptions()))
    assert "--no-texture" not in default and "--rest-pose" not in default and "--person" not in default
    with pytest.raises(ValueError, match="quality"):
        ep.reconstruct_command("py", "a.jpg", "o", ep.ReconstructOptions(quality="ultra"))
    assert ep.doctor_command("py") == ["py", "-m", "icon_engine", "doctor", "--json"]


def test_subject_command_and_progress_per_photo():
    opts = ep.ReconstructOptions(quality="preview", rest_pose="A")
    cmd = ep.subject_command("/py", ["/p/a.jpg", "/p/shots", "/p/turn.mp4"], "/out", opts, frames=6, name="ann")
    assert cmd[:8] == ["/py", "-m", "icon_engine", "reconstruct", "--subject", "/p/a.jpg", "/p/shots", "/p/turn.mp4"]
    joined = " ".join(cmd)
    for part in ("--out /out", "--progress json", "--quality preview", "--rest-pose A", "--frames 6", "--name ann"):
        assert part in joined
    with pytest.raises(ValueError, match="at least one"):
        ep.subject_command("/py", [], "/out", opts)
    with pytest.raises(ValueError, match="frames"):
        ep.subject_command("/py", ["a.jpg"], "/out", opts, frames=0)
    # the subject run's messages end with the photo counter; the panel leads with it
    assert ep.photo_step("Fitting b.jpg (2/4)") == (2, 4, "Fitting b.jpg")
    assert ep.progress_text("surface", "Clothed surface of clip.mp4@2.40s (3/4)", subject=True) == (
        "photo 3/4: Clothed surface of clip.mp4@2.40s")
    assert ep.photo_step("Fitting the body") is None and ep.photo_step("odd (5/4)") is None
    assert ep.progress_text("rig", "Fusing the photos into one avatar") == "Fusing the photos into one avatar"
    # other counters are not photos: the fusion's refinement levels, a single photo's surface levels
    assert ep.progress_text("rig", "Refining the surface (2/3)", subject=True) == "Refining the surface (2/3)"
    assert ep.progress_text("surface", "Refining the surface (2/3)") == "Refining the surface (2/3)"
    assert ep.progress_text("body_model", "") == "body model"


def test_engine_env_puts_engine_source_first():
    env = ep.engine_env("/addon/engine", {"PYTHONPATH": "/other", "PYTHONHOME": "/blender/python"})
    assert env["PYTHONPATH"].split(os.pathsep) == ["/addon/engine", "/other"]
    assert "PYTHONHOME" not in env and env["PYTHONUNBUFFERED"] == "1"


def test_parse_line():
    assert ep.parse_line("  \n") is None
    e = ep.parse_line('{"event": "done", "photo": "a.jpg", "bundle": "/x"}')
    assert e.kind == "done" and e.data["bundle"] == "/x"
    assert ep.parse_line("Traceback (most recent call last):").kind == "log"
    assert ep.parse_line('{"event": "launch"}').kind == "log"
    assert ep.parse_line("[1, 2]").kind == "log"


def test_odd_protocol_values_do_not_break_the_job():
    """JSON allows Infinity and NaN; a progress value or exit code the job cannot use is ignored or read as a
    failure (an ``int(inf)`` OverflowError escaped before wave 18)."""
    job = ep.EngineJob(command=["python"], photo="a.jpg")
    for line in ('{"event": "progress", "stage": "fit", "message": "x", "overall": 0.25}',
                 '{"event": "progress", "stage": "fit", "message": "x", "overall": NaN}',
                 '{"event": "progress", "overall": Infinity, "message": null}',
                 '{"event": "finished", "exit_code": Infinity}'):
        job._handle(ep.parse_line(line))
    assert job.returncode == 1 and job.overall == 0.25 and job.text


def test_successful_job_reports_progress_warnings_and_bundle(fake, tmp_path):
    job = fake_job(fake, "ok.jpg", tmp_path, log_path=tmp_path / "logs" / "ok.log")
    job.start()
    seen = []
    deadline = time.monotonic() + 30
    while not job.finished and time.monotonic() < deadline:
        seen += [e.kind for e in job.poll()]
        time.sleep(0.01)
    assert job.state == ep.DONE and job.returncode == 0
    assert job.bundles == [str(tmp_path / "ok")] and job.overall == 1.0
    assert job.warnings == ["the person touches the border"]
    assert seen.count("progress") == 3 and "log" in seen and seen[-1] == "done"
    assert job.stage == "bundle" and job.message == "bundleing"
    log = (tmp_path / "logs" / "ok.log").read_text()
    assert "a diagnostic line" in log and '"done"' in log


def test_engine_error_carries_code_message_and_hint(fake, tmp_path):
    job = fake_job(fake, "fail.jpg", tmp_path)
    job.start()
    job.wait(30)
    assert job.state == ep.FAILED and job.returncode == 4
    assert job.error == {"code": "no_person", "message": "No person found in fail.jpg.",
                         "hint": "Use a photo with one person whose body is visible."}


def test_crash_without_protocol_error_is_reported_with_the_tail(fake, tmp_path):
    job = fake_job(fake, "crash.jpg", tmp_path)
    job.start()
    job.wait(30)
    assert job.state == ep.FAILED and job.error["code"] == "engine_crash"
    assert "ZeroDivisionError" in job.error["message"] and job.error["hint"]


def test_missing_interpreter_fails_cleanly(tmp_path):
    job = ep.EngineJob([str(tmp_path / "no" / "python"), "-m", "icon_engine"], "a.jpg")
    job.start()
    assert job.state == ep.FAILED and job.error["code"] == "engine_start" and "Set up the engine" in job.error["hint"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


def test_cancel_kills_the_engine(fake, tmp_path):
    job = fake_job(fake, "slow.jpg", tmp_path)
    job.start()
    deadline = time.monotonic() + 30
    while job.stage != "fit" and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.01)
    pid = int((tmp_path / "pid").read_text())
    assert _alive(pid)
    job.cancel()
    assert job.state == ep.CANCELLED and job.finished
    time.sleep(0.1)
    assert not _alive(pid)
    assert job.poll() == [] and job.state == ep.CANCELLED and not job.bundles


def test_queue_runs_jobs_one_after_another(fake, tmp_path):
    q = ep.JobQueue()
    a = q.add(fake_job(fake, "ok.jpg", tmp_path / "a"))
    b = q.add(fake_job(fake, "fail.jpg", tmp_path / "b"))
    c = q.add(fake_job(fake, "ok.jpg", tmp_path / "c"))
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    c.cancel()  # a queued job can be dropped before it starts
    q.poll()
    assert a.state == ep.RUNNING and b.state == ep.QUEUED
    finished_order = []
    deadline = time.monotonic() + 60
    while q.active and time.monotonic() < deadline:
        for job, _ in q.poll():
            if job.finished and job not in finished_order:
                finished_order.append(job)
        assert sum(j.state == ep.RUNNING for j in q.jobs) <= 1
        time.sleep(0.01)
    assert finished_order == [a, b] and a.state == ep.DONE and b.state == ep.FAILED and c.state == ep.CANCELLED
    q.clear_finished()
    assert q.jobs == []


# --- engine environment set-up ---------------------------------------------------------------------------


def test_setup_steps_use_the_pins(repo_root, tmp_path):
    req = repo_root / "requirements.txt"
    pins = env_setup.read_pins(req)
    assert pins["torch"] and pins["numpy"].startswith("1.26")
    steps = env_setup.setup_steps("/usr/bin/python3.11", tmp_path / "venv", req, "cpu", windows=False)
    assert steps[0].argv == ["/usr/bin/python3.11", "-m", "venv", str(tmp_path / "venv")]
    py = str(tmp_path / "venv" / "bin" / "python")
    assert steps[1].argv[:4] == [py, "-m", "pip", "install"] and f"torch=={pins['torch']}" in steps[1].argv
    assert steps[1].argv[-1] == env_setup.TORCH_INDEX["cpu"]
    assert steps[2].argv[-2:] == ["-r", str(req)]
    cuda = env_setup.setup_steps("py", tmp_path / "v", req, "cuda", windows=True)
    assert cuda[1].argv[0].endswith("python.exe") and cuda[1].argv[-1] == env_setup.TORCH_INDEX["cuda"]
    with pytest.raises(ValueError):
        env_setup.setup_steps("py", tmp_path / "v", req, "rocm")


def test_setup_runner_runs_steps_and_stops_at_a_failure(tmp_path):
    ok = env_setup.SetupStep("say hello", [sys.executable, "-c", "print('hello')"])
    bad = env_setup.SetupStep("fail", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"])
    never = env_setup.SetupStep("never", [sys.executable, "-c", "open('never', 'w')"])
    runner = env_setup.SetupRunner([ok, bad, never], tmp_path / "setup.log")
    runner.start()
    assert runner.wait(60) == "failed"
    assert "fail failed (exit status 3)" in runner.error and runner.history == ["say hello: exit 0", "fail: exit 3"]
    log = (tmp_path / "setup.log").read_text()
    assert "hello" in log and "boom" in log and not Path("never").exists()
    pip_like = env_setup.SetupStep("pip", [sys.executable, "-c",
                                           "print('Collecting torch==2.13.0'); print('  Downloading torch.whl')"])
    good = env_setup.SetupRunner([ok, pip_like], tmp_path / "good.log")
    good.start()
    assert good.wait(60) == "done" and good.fraction == 1.0
    assert good.status_line() == "Downloading torch.whl"


def test_setup_in_a_real_venv_without_network(tmp_path):
    """The first real step: a venv made by this interpreter, whose python then runs."""
    step = env_setup.setup_steps(sys.executable, tmp_path / "env", Path(__file__).parents[1] / "requirements.txt")[0]
    runner = env_setup.SetupRunner([step], tmp_path / "log.txt")
    runner.start()
    assert runner.wait(120) == "done"
    py = env_setup.venv_python(tmp_path / "env")
    assert py.is_file()
    version = json.loads(__import__("subprocess").run(
        [str(py), "-c", "import json, sys; print(json.dumps(sys.version_info[:2]))"],
        capture_output=True, text=True, check=True).stdout)
    assert tuple(version) == sys.version_info[:2]


def test_base_python_check():
    if sys.version_info[:2] in env_setup.ENGINE_PYTHONS:
        assert env_setup.check_base_python(sys.executable) == sys.version_info[:2]
    else:
        with pytest.raises(ValueError, match="needs Python 3.11"):
            env_setup.check_base_python(sys.executable)
    with pytest.raises(ValueError, match="Could not run"):
        env_setup.check_base_python("/no/such/python")


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the engine's environment (torch) is absent")
def test_every_option_the_addon_passes_is_accepted_by_the_real_engine(tmp_path, repo_root):
    """The real CLI checks its arguments before any work: a missing photo must be the only complaint."""
    opts = ep.ReconstructOptions(quality="high", texture=False, rest_pose="A", person=1, device="cpu")
    cmd = ep.reconstruct_command(sys.executable, tmp_path / "missing.jpg", tmp_path / "out", opts)
    job = ep.EngineJob(cmd, "missing.jpg", env=ep.engine_env(repo_root))
    job.start()
    job.wait(120)
    assert job.state == ep.FAILED and job.error["code"] == "photo_missing", job.error
    assert job.error["hint"] and job.returncode == 3 and not (tmp_path / "out").exists()
    # a several-photo run: every option is accepted, the missing photo is the only complaint
    cmd = ep.subject_command(sys.executable, [tmp_path / "missing.jpg", tmp_path / "b.jpg"], tmp_path / "out", opts,
                             frames=3)
    job = ep.EngineJob(cmd, "missing.jpg + 1 more", env=ep.engine_env(repo_root))
    job.start()
    job.wait(120)
    assert job.state == ep.FAILED and job.error["code"] == "photo_missing", job.error
    assert not (tmp_path / "out").exists()
