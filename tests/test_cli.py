"""The engine's command line: refusals with clear messages and exit codes, doctor, the JSON protocol."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icon_engine.errors import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_CANCELLED,
    EXIT_MODEL_FILES,
    EXIT_OUTPUT,
    EXIT_USAGE,
    EngineError,
)

ROOT = Path(__file__).resolve().parents[1]


def run_engine(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "icon_engine", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture()
def small_image(tmp_path: Path) -> Path:
    path = tmp_path / "plain.png"
    Image.fromarray(np.full((128, 96, 3), 200, np.uint8)).save(path)
    return path


def test_no_command_is_a_usage_error() -> None:
    result = run_engine()
    assert result.returncode == EXIT_USAGE
    assert "COMMAND" in result.stderr or "required" in result.stderr


def test_unknown_option_value_names_the_choices(tmp_path: Path, small_image: Path) -> None:
    result = run_engine("reconstruct", str(small_image), "--out", str(tmp_path / "o"), "--quality", "ultra")
    assert result.returncode == EXIT_USAGE
    assert "invalid choice: 'ultra'" in result.stderr and "preview" in result.stderr
    assert not (tmp_path / "o").exists()


def test_missing_photo(tmp_path: Path) -> None:
    result = run_engine("reconstruct", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o"))
    assert result.returncode == EXIT_BAD_INPUT
    assert "nope.jpg" in result.stderr and "hint:" in result.stderr
    assert not (tmp_path / "o").exists()


def test_not_an_image_is_refused_before_any_work(tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a photo")
    result = run_engine("reconstruct", str(fake), "--out", str(tmp_path / "o"), "--progress", "json")
    assert result.returncode == EXIT_BAD_INPUT
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["event"] == "error" and line["code"] == "bad_image" and line["hint"]
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder(tmp_path: Path, small_image: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = run_engine("reconstruct", str(small_image), "--out", str(blocker / "sub"))
    assert result.returncode == EXIT_OUTPUT
    assert "is a file" in result.stderr
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = run_engine("reconstruct", str(small_image), "--out", str(locked / "o"))
        assert result.returncode == EXIT_OUTPUT


def test_missing_model_files_are_named(tmp_path: Path, small_image: Path) -> None:
    result = run_engine("reconstruct", str(small_image), "--out", str(tmp_path / "o"), "--smplx-model",
                        str(tmp_path / "SMPLX_NEUTRAL.npz"))
    assert result.returncode == EXIT_MODEL_FILES
    assert "SMPLX_NEUTRAL.npz" in result.stderr


def test_cuda_request_without_cuda(tmp_path: Path, small_image: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_engine("reconstruct", str(small_image), "--out", str(tmp_path / "o"), "--device", "cuda")
    assert result.returncode == EXIT_MODEL_FILES
    assert "--device cpu" in result.stderr


def test_doctor_reports_packages_device_and_optional_files() -> None:
    result = run_engine("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["packages"]["torch"].startswith("2.13.0")
    assert report["device"]["cuda"] in (True, False)
    assert "icon.is.tue.mpg.de" in report["icon_data"]["how_to_enable"]
    assert report["body_model"]["active"] == "open"
    assert "smpl-x.is.tue.mpg.de" in report["body_model"]["how_to_use_official"]
    text = run_engine("doctor").stdout
    assert "Body model:" in text and "ICON networks:" in text


def test_validate_refuses_a_non_bundle(tmp_path: Path) -> None:
    result = run_engine("validate", str(tmp_path))
    assert result.returncode == EXIT_BAD_INPUT
    assert "bundle.json is missing" in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# Hardening (issue 19): trust rules through validate, cancel, disk full, claims, doctor, messages
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> Path:
    from test_bundle import _content

    from icon_engine.bundle import write_bundle

    return write_bundle(tmp_path / "out" / "subject", _content(np.random.default_rng(0)))


def test_validate_points_from_the_output_folder_to_the_bundle(bundle_dir: Path) -> None:
    out = bundle_dir.parent
    result = run_engine("validate", str(out))
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr.strip().splitlines() == [
        f"error: Invalid bundle: {out}: not a bundle (bundle.json is missing) but an output folder holding 1 "
        "bundle(s): subject/",
        f"hint: Give one bundle folder, e.g. {bundle_dir}",
    ]
    assert run_engine("validate", str(bundle_dir)).returncode == 0


def test_validate_refuses_symlinks_of_every_file_kind(bundle_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from bundle_trust import BUNDLE_FILES, LINK_MESSAGE, file_label, link_outside

    from icon_engine.cli import main

    pristine = {name: (bundle_dir / name).read_bytes() for name in BUNDLE_FILES}
    for name in BUNDLE_FILES:
        outside = link_outside(bundle_dir, name)
        assert main(["validate", str(bundle_dir)]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.splitlines()[0] == f"error: Invalid bundle: {bundle_dir}: {file_label(name)} {LINK_MESSAGE}", name
        (bundle_dir / name).unlink()
        (bundle_dir / name).write_bytes(pristine[name])
        outside.unlink()
    assert main(["validate", str(bundle_dir)]) == 0


def test_validate_refuses_a_photo_that_is_not_an_image(bundle_dir: Path) -> None:
    (bundle_dir / "photo.jpg").write_text("root:x:0:0:root:/root:/bin/bash\n")
    result = run_engine("validate", str(bundle_dir))
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr.splitlines()[0] == (
        f"error: Invalid bundle: {bundle_dir}: 'photo.jpg' (photo) is not a PNG or JPEG image")


def test_doctor_fails_when_a_configured_file_is_unusable(tmp_path: Path) -> None:
    missing = tmp_path / "SMPLX_NEUTRAL.npz"
    result = run_engine("doctor", "--smplx-model", str(missing))
    assert result.returncode == EXIT_MODEL_FILES
    assert f"error: --smplx-model {missing} is not usable: " in result.stderr and "does not exist" in result.stderr
    assert "Body model:" in result.stdout  # the report is still printed in full
    empty = tmp_path / "icon"
    empty.mkdir()
    result = run_engine("doctor", "--json", "--icon-data", str(empty))
    assert result.returncode == EXIT_MODEL_FILES
    report = json.loads(result.stdout)
    assert report["problems"] == [f"--icon-data {empty} is not usable: {empty} has no usable ICON checkpoints."]
    assert result.stderr.splitlines() == [f"error: {report['problems'][0]}",
                                          "hint: Fix the file or folder named above, or leave the option out (the "
                                          "engine then uses the open body / its built-in surface)."]


def test_out_on_a_virtual_file_system_is_refused_up_front(small_image: Path) -> None:
    result = run_engine("reconstruct", str(small_image), "--out", "/proc/icon-out", "--progress", "json")
    assert result.returncode == EXIT_OUTPUT
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "event": "error", "photo": None, "code": "output",
        "message": "Cannot write to /proc/icon-out: it is on a virtual file system (like /proc), not a disk.",
        "hint": "Choose a folder on a disk for --out."}


def test_not_enough_free_space_is_refused_before_the_run(tmp_path: Path, small_image: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    import shutil

    from icon_engine import cli

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100 << 30, 100 << 30, 3 << 20))
    monkeypatch.setattr("icon_engine.pipeline.reconstruct", lambda *a, **k: pytest.fail("the run started"))
    out = tmp_path / "o"
    assert cli.main(["reconstruct", str(small_image), "--out", str(out), "--quality", "preview"]) == EXIT_OUTPUT
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: Not enough disk space in {out}: 1 bundle(s) need about ")
    assert err[0].endswith(" MB, 3 MB is free.")
    assert err[1] == "hint: Free some disk space or choose a folder on another disk for --out."
    assert not out.exists()


def test_a_second_run_into_the_same_target_is_refused(tmp_path: Path, small_image: Path) -> None:
    from icon_engine.bundle.writer import claim_target

    out = tmp_path / "o"
    with claim_target(out / "plain"):  # this process is "the first run"
        result = run_engine("reconstruct", str(small_image), "--out", str(out), "--progress", "json")
    assert result.returncode == EXIT_OUTPUT
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "event": "error", "photo": None, "code": "output",
        "message": f"{out / 'plain'} is being written by another reconstruction (process {os.getpid()}).",
        "hint": "Wait for it to finish, or choose another --out folder."}
    assert list(out.iterdir()) == []


def test_a_photo_whose_stem_is_a_dot_writes_its_own_folder_and_keeps_the_rest_of_out(tmp_path: Path) -> None:
    """``..jpg`` has the stem ``.``: its bundle was written to ``--out`` itself, replacing every other bundle there
    (wave 18). Now the folder is the stem made folder-safe (``photo`` when nothing is left), like a batch's; an
    unsafe ``--name`` is refused before any work."""
    import shutil

    from icon_engine import cli
    from icon_engine.sample import sample_photo_path

    photo = tmp_path / "..jpg"
    shutil.copy(sample_photo_path(), photo)
    out = tmp_path / "out"
    (out / "earlier").mkdir(parents=True)
    (out / "earlier" / "bundle.json").write_text("{}")
    assert cli.main(["reconstruct", str(photo), "--out", str(out), "--quality", "preview", "--no-texture"]) == 0
    assert (out / "earlier" / "bundle.json").read_text() == "{}"
    assert (out / "photo" / "bundle.json").is_file() and not (out / "bundle.json").exists()
    result = run_engine("reconstruct", "--subject", str(photo), "--name", "../x", "--out", str(out))
    assert result.returncode == EXIT_USAGE and "not a plain folder name" in result.stderr
    assert not (tmp_path / "x").exists()


def test_photos_with_the_same_stem_get_a_folder_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``reconstruct a/me.jpg b/me.jpg``: both bundles went to ``out/me``, the second replacing the first (wave
    18); now they are ``me`` and ``me-2``, as in a batch."""
    from concurrent.futures import Future

    from test_bundle import _content

    from icon_engine import cli, pipeline
    from icon_engine.bundle import write_bundle

    photos = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        photos.append(tmp_path / folder / "me.png")
        Image.fromarray(np.full((128, 96, 3), 120, np.uint8)).save(photos[-1])
    ready: Future = Future()
    ready.set_result(object())
    monkeypatch.setattr(pipeline, "preload_body", lambda options: ready)
    monkeypatch.setattr(pipeline, "reconstruct", lambda photo, out_dir, options, bundle_name=None, **kw: write_bundle(
        pipeline.bundle_folder(out_dir, bundle_name, photo), _content(np.random.default_rng(len(photo.parent.name)))))
    out = tmp_path / "out"
    assert cli.main(["reconstruct", *map(str, photos), "--out", str(out), "--progress", "none"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["me", "me-2"]


def test_a_folder_named_like_the_photo_is_never_replaced(tmp_path: Path, small_image: Path) -> None:
    """``reconstruct plain.png --out DIR`` beside the user's own ``DIR/plain/`` folder: exit 6 before any work, the
    folder untouched (it was replaced by the bundle before wave 18); the same through ``--subject``."""
    mine = tmp_path / "plain"
    mine.mkdir()
    (mine / "beach.jpg").write_text("keep")
    for extra in ((), ("--subject",)):
        result = run_engine("reconstruct", *extra, str(small_image), "--out", str(tmp_path), "--progress", "json")
        assert result.returncode == EXIT_OUTPUT, result.stderr
        error = json.loads(result.stdout.splitlines()[-1])
        assert error["code"] == "output" and "not a result bundle" in error["message"] and error["hint"]
        assert [p.name for p in mine.iterdir()] == ["beach.jpg"]


def test_bundle_folders_are_plain_folder_names() -> None:
    from icon_engine.bundle.writer import MAX_FOLDER_NAME, bundle_folder

    out = Path("/o")
    assert bundle_folder(out, None, "/p/..jpg") == out / "photo"
    assert bundle_folder(out, None, "/p/a:b?.jpg") == out / "a_b_"
    assert bundle_folder(out, None, "/p/.hidden.png") == out / "hidden"
    assert bundle_folder(out, None, "/p/café 2.png") == out / "café 2"
    assert bundle_folder(out, None, "/p/" + "x" * 300 + ".jpg").name == "x" * MAX_FOLDER_NAME
    assert bundle_folder(out, "my avatar", "/p/a.jpg") == out / "my avatar"
    for bad in ("../x", "/abs", ".", "", "a/b", " padded "):
        with pytest.raises(EngineError) as err:
            bundle_folder(out, bad, "/p/a.jpg")
        assert err.value.code == "bad_option" and err.value.hint


#: Runs the real CLI (signal handling, claims, writer) with the pipeline replaced by a bundle write whose meshes
#: are written slowly (argv: photo, out, mode): "slow" waits after the first mesh, "fast" does not, "fsize" limits
#: the size of files this process may write (RLIMIT_FSIZE: a real write error, like a full disk).
FAKE_RUN = """
import resource, signal, sys, time
from pathlib import Path
import numpy as np
from icon_engine import cli, pipeline
from icon_engine.bundle import writer
from test_bundle import _content
photo, out, mode = sys.argv[1:4]
real = writer.write_ply
def slow(path, mesh):
    real(path, mesh)
    print("writing", file=sys.stderr, flush=True)
    time.sleep(120)
if mode == "slow":
    writer.write_ply = slow
if mode == "fsize":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
def fake(photo, out_dir, options=None, **kw):
    return writer.write_bundle(Path(out_dir) / Path(photo).stem, _content(np.random.default_rng(0)))
pipeline.reconstruct = fake
pipeline.load_body = lambda *a, **k: object()
sys.exit(cli.main(["reconstruct", photo, "--out", out, "--progress", "json", "--quality", "preview"]))
"""


def fake_run(photo: Path, out: Path, mode: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'tests'}")
    return subprocess.Popen([sys.executable, "-c", FAKE_RUN, str(photo), str(out), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


CANCELLED = {"event": "error", "photo": None, "code": "cancelled", "message": "Reconstruction cancelled.", "hint": ""}


def test_sigterm_during_the_bundle_write_cancels_cleanly(tmp_path: Path, small_image: Path) -> None:
    out = tmp_path / "o"
    proc = fake_run(small_image, out, "slow")
    try:
        assert proc.stderr.readline().strip() == "writing"
        assert any(p.name.startswith(".plain.partial-") for p in out.iterdir())
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=180)  # a hang guard, not a timing: a loaded machine took > 60 s once
    finally:
        proc.kill()
    assert proc.returncode == EXIT_CANCELLED
    assert json.loads(stdout.splitlines()[-1]) == CANCELLED
    assert not out.exists()  # the run created it and wrote nothing into it


def test_sigkill_leftovers_are_removed_by_the_next_run(tmp_path: Path, small_image: Path) -> None:
    out = tmp_path / "o"
    proc = fake_run(small_image, out, "slow")
    try:
        assert proc.stderr.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    left = sorted(p.name for p in out.iterdir())
    assert len(left) == 2 and left[0] == ".plain.lock" and left[1].startswith(".plain.partial-")
    proc = fake_run(small_image, out, "fast")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert json.loads(stdout.splitlines()[-1])["event"] == "done"
    assert sorted(p.name for p in out.iterdir()) == ["plain"]


def test_a_write_error_is_exit_6_with_nothing_left(tmp_path: Path, small_image: Path) -> None:
    out = tmp_path / "o"
    proc = fake_run(small_image, out, "fsize")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_OUTPUT, stderr
    event = json.loads(stdout.splitlines()[-1])
    assert event["code"] == "output" and "Traceback" not in stderr
    assert re.fullmatch(rf"Not enough disk space to write the bundle plain in {re.escape(str(out))} \(\d+ MB free\)\.",
                        event["message"])
    assert not out.exists()


def test_sigterm_cancels_a_real_run(tmp_path: Path) -> None:
    """The add-on's Cancel (SIGTERM to the process group) during a real reconstruction of the sample photo."""
    out = tmp_path / "o"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "icon_engine", "reconstruct", "--sample", "--out", str(out),
                             "--quality", "preview", "--progress", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT, start_new_session=True)
    try:
        for line in proc.stdout:
            if json.loads(line).get("stage") == "fit":
                break
        assert out.is_dir()  # claimed: the lock file is there
        os.killpg(proc.pid, signal.SIGTERM)
        rest = proc.stdout.read()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_CANCELLED
    assert json.loads(rest.strip().splitlines()[-1]) == CANCELLED
    assert not out.exists()


def test_an_output_folder_that_cannot_be_created(tmp_path: Path, small_image: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    """A read-only disk passes the permission check (as root everything does) but creating the folder fails."""
    import errno

    from icon_engine import cli

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    out = tmp_path / "o"
    assert cli.main(["reconstruct", str(small_image), "--out", str(out)]) == EXIT_OUTPUT
    assert capsys.readouterr().err.splitlines() == [
        f"error: Cannot create or write the output folder {out}: Read-only file system.",
        "hint: Choose a folder you can write to for --out."]


def test_validate_names_nan_joints(bundle_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from icon_engine.cli import main

    joints = np.load(bundle_dir / "rest_joints.npy")
    joints[3] = np.nan
    np.save(bundle_dir / "rest_joints.npy", joints)
    assert main(["validate", str(bundle_dir)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        f"error: Invalid bundle: {bundle_dir / 'rest_joints.npy'}: NaN or infinite coordinates in joint(s) 3 "
        "(spine1)",
        "hint: Re-run the reconstruction."]


def test_sample_onto_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture) -> None:
    import errno
    import shutil

    from PIL import Image

    from icon_engine import cli

    def full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 2 << 20))
    assert cli.main(["sample", "--out", str(tmp_path / "s.png")]) == EXIT_OUTPUT
    assert capsys.readouterr().err.splitlines() == [
        f"error: Not enough disk space to write the sample photo s.png in {tmp_path} (2 MB free).",
        "hint: Free some disk space or choose a folder on another disk for --out; nothing was written."]
    assert list(tmp_path.iterdir()) == []


def test_sample_into_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``sample --out DIR`` puts ``sample.png`` into the folder (an internal IsADirectoryError before wave 18)."""
    from icon_engine import cli

    assert cli.main(["sample", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "sample.png").is_file() and capsys.readouterr().out.strip() == str(tmp_path / "sample.png")
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "sample.png").mkdir()
    assert cli.main(["sample", "--out", str(tmp_path / "inner")]) == EXIT_OUTPUT
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("args", [("sample",),
                                  ("reconstruct", "no-such-photo.jpg", "--out", "out", "--progress", "json")])
def test_closed_stdout_pipe_exits_quietly(args: tuple[str, ...], tmp_path: Path) -> None:
    """``python -m icon_engine … | head``: the reader has gone before the engine writes; the engine stops with
    status 141 (128 + SIGPIPE) and no traceback."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the engine starts: every write to stdout fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "icon_engine", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, env=env, cwd=tmp_path)
    finally:
        os.close(write_end)
    assert proc.returncode == EXIT_BROKEN_PIPE, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr


def test_one_option_mapping_for_reconstruct_and_batch() -> None:
    """``reconstruct`` and ``batch`` map their options through options.options_from_cli; the batch path refuses an
    option it cannot place."""
    from icon_engine.batch.cli import options_from_args as batch_options
    from icon_engine.cli import build_parser, options_from_args
    from icon_engine.errors import EngineError
    from icon_engine.options import options_from_cli

    argv = ["--quality", "preview", "--faces", "5000", "--no-texture", "--height", "1.8", "--person", "1"]
    rec = options_from_args(build_parser().parse_args(["reconstruct", "a.jpg", "--out", "o", *argv]))
    bat_args = build_parser().parse_args(["batch", "a.jpg", "--out", "o", *argv])
    assert batch_options(bat_args, bat_args.batch_option_destinations) == rec
    assert (rec.quality, rec.face_count, rec.texture, rec.height_m, rec.person_index) == ("preview", 5000, False,
                                                                                          1.8, 1)
    with pytest.raises(EngineError) as err:
        options_from_cli({"quality": "preview", "bogus": 1}, strict=True)
    assert err.value.code == "internal" and "bogus" in err.value.message


def test_parsing_the_command_line_imports_no_heavy_package() -> None:
    """Start-up: building the parser (every sub-command, ``body`` included) imports neither torch nor mediapipe;
    they load when a command needs them (measured: torch alone is 1-2 s of a cold start)."""
    code = ("import json, sys\nfrom icon_engine.cli import build_parser\n"
            "build_parser().parse_args(['reconstruct', '--sample', '--out', 'x'])\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'mediapipe', 'smplx', "
            "'matplotlib', 'trimesh', 'scipy'})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("given", [None, "2"])
def test_the_engine_process_runs_blas_on_one_thread_unless_told(given: str | None) -> None:
    """``python -m icon_engine`` puts OpenBLAS on one thread before numpy loads (its idle threads spun on the cores
    the engine's workers need: docs/benchmarks.md, wave 35); a count the caller set is kept."""
    probe = ("import os, runpy, sys\n"
             "sys.argv = ['icon_engine', '--help']\n"
             "try:\n    runpy.run_module('icon_engine', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print('BLAS', os.environ.get('OPENBLAS_NUM_THREADS'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert f"BLAS {given or '1'}" in out.stdout.splitlines()
