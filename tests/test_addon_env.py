"""Engine environment location, set-up stamp and repair, the engine process's environment variables, and the
background engine check (Blender-free: stdlib + real subprocesses)."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from icon_blender.core import doctor_check, env_setup
from icon_blender.core import engine_proc as ep


def test_env_dir_is_per_user_short_and_outside_blender(tmp_path):
    win = env_setup.default_env_dir("win32", {"LOCALAPPDATA": r"C:\Users\ana\AppData\Local"}, "C:/Users/ana")
    assert str(win).replace("\\", "/").endswith("AppData/Local/ICONBlender/engine")
    assert len(str(win)) < env_setup.MAX_WINDOWS_ENV_PATH
    mac = env_setup.default_env_dir("darwin", {}, "/Users/ana")
    assert mac == Path("/Users/ana/Library/Application Support/ICONBlender/engine")
    assert env_setup.default_env_dir("linux", {}, "/home/ana") == Path("/home/ana/.local/share/icon-blender/engine")
    assert env_setup.default_env_dir("linux", {"XDG_DATA_HOME": "/data"}, "/h") == Path("/data/icon-blender/engine")
    for path in (win, mac):  # no Blender version and no extension folder in it: shared and survives a reinstall
        assert "Blender Foundation" not in str(path) and "extensions" not in str(path)
    env_setup.check_env_dir(win, windows=True)
    with pytest.raises(ValueError, match="260-character"):
        env_setup.check_env_dir("C:/" + "x" * 120, windows=True)
    env_setup.check_env_dir("/" + "x" * 120, windows=False)


def test_macos_is_not_offered_cuda(repo_root, tmp_path):
    assert env_setup.compute_choices("darwin") == ("cpu",)
    assert env_setup.compute_choices("win32") == ("cpu", "cuda") == env_setup.compute_choices("linux")
    req = repo_root / "requirements.txt"
    with pytest.raises(ValueError, match="no CUDA build for macOS"):
        env_setup.setup_steps("py", tmp_path / "v", req, "cuda", windows=False, platform="darwin")
    assert env_setup.setup_steps("py", tmp_path / "v", req, "cpu", platform="darwin")[1].argv[-1].endswith("/cpu")


def test_engine_and_setup_processes_get_a_clean_python_environment():
    base = {"PATH": "/bin", "PYTHONHOME": "/blender/python", "PYTHONPATH": "/blender/lib"}
    env = ep.engine_env("/addon/engine", base)
    assert env["PYTHONNOUSERSITE"] == "1" and env["PYTHONUTF8"] == "1" and "PYTHONHOME" not in env
    assert env["PYTHONPATH"].split(":")[0] == "/addon/engine"
    setup = env_setup.setup_env(base)
    assert setup["PYTHONNOUSERSITE"] == "1" and setup["PYTHONUTF8"] == "1"
    assert "PYTHONHOME" not in setup and "PYTHONPATH" not in setup and setup["PATH"] == "/bin"


def test_stamp_says_the_setup_finished_and_an_interrupted_one_is_repaired(repo_root, tmp_path):
    req = repo_root / "requirements.txt"
    venv = tmp_path / "engine"
    assert env_setup.env_status(venv, req) == env_setup.ENV_MISSING
    # a set-up that creates the interpreter, then is interrupted before its last step
    fake_python = env_setup.venv_python(venv)
    make = env_setup.SetupStep("make", [sys.executable, "-c", textwrap.dedent(f"""
        import os, sys
        os.makedirs(os.path.dirname({str(fake_python)!r}), exist_ok=True)
        open({str(fake_python)!r}, "w").close()""")])
    slow = env_setup.SetupStep("install", [sys.executable, "-c", "import time; time.sleep(60)"])
    runner = env_setup.SetupRunner([make, slow], tmp_path / "setup.log", env=env_setup.setup_env(),
                                   stamp=(venv, req, "cpu"))
    runner.start()
    deadline = time.monotonic() + 30
    while runner.index == 0:
        runner.poll()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    runner.cancel()
    assert runner.state == "cancelled" and fake_python.is_file()
    assert env_setup.env_status(venv, req) == env_setup.ENV_INCOMPLETE  # detected: no stamp
    # the repair runs the set-up again; the stamp appears only when every step passed
    ok = env_setup.SetupStep("install", [sys.executable, "-c", "print('ok')"])
    again = env_setup.SetupRunner([make, ok], tmp_path / "setup.log", stamp=(venv, req, "cpu"))
    again.start()
    assert again.wait(60) == "done"
    assert env_setup.env_status(venv, req) == env_setup.ENV_READY
    assert env_setup.read_stamp(venv)["requirements_sha256"] == env_setup.requirements_hash(req)
    # other pins (an add-on update) → outdated; a new set-up removes the stamp first
    other = tmp_path / "req.txt"
    other.write_text("torch==9.9.9\n")
    assert env_setup.env_status(venv, other) == env_setup.ENV_OUTDATED
    failing = env_setup.SetupRunner([env_setup.SetupStep("x", [sys.executable, "-c", "raise SystemExit(2)"])],
                                    tmp_path / "setup.log", stamp=(venv, other, "cpu"))
    failing.start()
    assert failing.wait(60) == "failed" and env_setup.env_status(venv, other) == env_setup.ENV_INCOMPLETE
    # an environment folder whose interpreter is gone is recreated from scratch (venv --clear)
    fake_python.unlink()
    steps = env_setup.setup_steps("base", venv, req, "cpu", windows=False)
    assert steps[0].argv == ["base", "-m", "venv", "--clear", str(venv)]


def _fake_doctor(tmp_path: Path, report: str, delay: float = 0.0) -> str:
    script = tmp_path / "doctor.py"
    script.write_text(f"import time, sys\ntime.sleep({delay})\nprint({report!r})\n")
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}"\n')
    python.chmod(0o755)
    return str(python)


def test_doctor_reports_missing_torch_and_mediapipe_as_errors():
    report = {"engine": "0.1.0", "packages": {"torch": None, "numpy": "1.26.4", "mediapipe": None},
              "device": {"torch": None, "cuda": False, "note": "PyTorch is missing: run the engine set-up again."}}
    lines = doctor_check.report_lines(report)
    assert lines[0][2] is False and "torch, mediapipe not installed" in lines[0][1]
    by_label = {label: (text, ok) for label, text, ok in lines}
    assert by_label["Device"][1] is False and by_label["Packages"] == ("numpy 1.26.4", True)
    good = {"engine": "0.1.0", "packages": {name: "1.0" for name in doctor_check.REQUIRED_PACKAGES},
            "device": {"torch": "2.13.0", "cuda": False, "note": "CPU"}}
    assert all(ok for _, _, ok in doctor_check.report_lines(good))


def test_doctor_runs_in_the_background(tmp_path):
    python = _fake_doctor(tmp_path, '{"engine": "0.1.0", "packages": {"torch": null}}', delay=1.0)
    t0 = time.monotonic()
    run = doctor_check.DoctorRun(python)
    assert time.monotonic() - t0 < 0.5 and run.poll() is None and run.running  # returned at once
    lines = run.wait(30)
    assert not run.running and lines[0][0] == "Missing" and not lines[0][2]
    broken = doctor_check.DoctorRun(_fake_doctor(tmp_path, "Traceback: boom"))
    assert any("doctor failed" in text and not ok for _, text, ok in broken.wait(30))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and /proc")
def test_engine_does_not_outlive_a_crashed_blender(tmp_path):
    """Blender killed outright (no atexit, no unregister): the engine's progress pipe breaks and it exits at its
    next progress line instead of running on as an orphan."""
    import os
    import subprocess

    engine = tmp_path / "engine.py"
    engine.write_text(textwrap.dedent(f"""
        import json, os, time
        open({str(tmp_path / "pid")!r}, "w").write(str(os.getpid()))
        for i in range(600):
            print(json.dumps({{"event": "progress", "stage": "fit", "overall": i / 600}}), flush=True)
            time.sleep(0.1)
    """))
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\\xff")
    blender = tmp_path / "blender.py"  # stands in for Blender: queues a job, polls it once, then dies by SIGKILL
    blender.write_text(textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from icon_blender.core import engine_proc as ep
        from icon_blender.jobs import Reconstructions
        rec = Reconstructions({str(tmp_path / "results")!r})
        rec.submit(sys.executable, {str(photo)!r}, ep.ReconstructOptions(), command=[sys.executable, {str(engine)!r}])
        while not os.path.exists({str(tmp_path / "pid")!r}):
            rec.tick()
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
    """))
    proc = subprocess.run([sys.executable, str(blender)], timeout=60)
    assert proc.returncode == -9
    pid = int((tmp_path / "pid").read_text())

    def alive() -> bool:
        try:
            state = Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"  # a zombie has exited (only waiting to be reaped)

    deadline = time.monotonic() + 5
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive():
        os.kill(pid, 9)
    assert not alive()


def test_two_queues_on_one_results_folder_never_share_a_run_folder(tmp_path, monkeypatch):
    """Two Blender sessions on one results folder, in the same second: each run folder is created by the queue
    that claims it (wave 18: both could pick the same name between the check and the creation)."""
    from icon_blender.jobs import Reconstructions

    monkeypatch.setattr(time, "strftime", lambda fmt: "20261205-120000")
    first, second = Reconstructions(tmp_path), Reconstructions(tmp_path)
    dirs = [first._fresh_run_dir(), second._fresh_run_dir(), first._fresh_run_dir()]
    assert len(set(dirs)) == 3 and all(d.is_dir() for d in dirs)
    assert sorted(d.name for d in dirs) == ["20261205-120000-1", "20261205-120000-2", "20261205-120000-3"]


def test_only_run_folders_the_addon_made_are_listed_or_deleted(tmp_path):
    """The output folder is the user's choice (say ~/Pictures): a folder of theirs that holds a bundle among their
    photos is neither listed as a past result nor deletable — Delete removed the whole folder before wave 18. Nor is
    a result holding the artist's own files (a .blend saved into it: deleted with it before wave 19)."""
    import pytest

    from icon_blender.jobs import delete_result, list_results

    def bundle(folder):
        folder.mkdir(parents=True)
        (folder / "bundle.json").write_text('{"photo": {"name": "me.jpg"}}')
        return folder

    run = bundle(tmp_path / "20261205-120000-1" / "me").parent
    holiday = bundle(tmp_path / "holiday" / "avatar").parent
    (holiday / "beach.jpg").write_text("keep")
    odd = bundle(tmp_path / "20261205-120000-2" / "you").parent
    (odd / "notes.txt").write_text("keep")  # a run-like name, but something of the user's inside
    assert [r.run_dir for r in list_results(tmp_path)] == [run]
    for folder, name in ((holiday, "avatar"), (odd, "you")):
        with pytest.raises(ValueError, match="not a result"):
            delete_result(folder / name, tmp_path)
    assert (holiday / "beach.jpg").read_text() == "keep" and (odd / "notes.txt").read_text() == "keep"
    (run / "me" / "me.blend").write_bytes(b"BLENDER")  # the artist saved their work into the result's folder
    with pytest.raises(ValueError, match="me.blend"):
        delete_result(run / "me", tmp_path)
    assert (run / "me" / "me.blend").read_bytes() == b"BLENDER"
    (run / "me" / "me.blend").unlink()
    assert delete_result(run / "me", tmp_path) == run and not run.exists()
