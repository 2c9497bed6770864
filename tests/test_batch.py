"""Batch reconstruction (issue 18): inputs, names, manifest, resume, failure isolation, local workers and Ray.

The end-to-end cases run the real engine (mediapipe, the open body) on the built-in sample photo at preview
quality with small textures, a generated photo without a person and a corrupt file.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icon_engine.batch import BatchJob, assign_names, collect_photos, plan_batch, read_manifest, run_batch
from icon_engine.batch.cli import options_from_args, shared_destinations
from icon_engine.batch.manifest import ManifestWriter
from icon_engine.batch.report import BatchCounts, BatchReporter, bar_line, format_duration
from icon_engine.batch.runner import default_workers
from icon_engine.bundle import read_bundle
from icon_engine.cli import build_parser, main
from icon_engine.errors import (
    EXIT_BAD_INPUT,
    EXIT_BATCH_FAILED,
    EXIT_CANCELLED,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_USAGE,
    EngineError,
)
from icon_engine.options import ReconstructOptions

ROOT = Path(__file__).resolve().parents[1]
#: Small, fast reconstructions: the options every end-to-end case uses.
FAST = ("--quality", "preview", "--texture-size", "256", "--faces", "5000")
FAST_OPTIONS = ReconstructOptions(quality="preview", texture_size=256, face_count=5000)


def _image(path: Path, size: tuple[int, int] = (96, 128)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 180, np.uint8)).save(path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Inputs and names


def test_folders_are_searched_recursively_in_order_and_lists_are_read(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    b = _image(root / "b.png")
    a = _image(root / "a.jpg")
    deep = _image(root / "sub" / "deeper" / "c.webp")
    _image(root / ".hidden" / "x.png")
    _image(root / ".y.png")
    (root / "notes.md").write_text("not a photo")
    assert collect_photos([root]) == [a.absolute(), b.absolute(), deep.absolute()]

    other = _image(tmp_path / "elsewhere" / "d.png")
    (tmp_path / "list.txt").write_text(f"# photos\n\nphotos/b.png\n{other}\nphotos/sub\n")
    assert collect_photos([tmp_path / "list.txt"]) == [b.absolute(), other.absolute(), deep.absolute()]

    (tmp_path / "cat.csv").write_text("id,Photo,label\n1,photos/a.jpg,x\n2,missing.png,y\n")
    assert collect_photos([tmp_path / "cat.csv"]) == [a.absolute(), (tmp_path / "missing.png").absolute()]
    (tmp_path / "plain.csv").write_text("photos/b.png,7\nphotos/a.jpg,8\n")
    assert collect_photos([tmp_path / "plain.csv"]) == [b.absolute(), a.absolute()]

    # the same photo named twice (directly and through its folder) runs once
    assert collect_photos([b, root]) == [b.absolute(), a.absolute(), deep.absolute()]


def test_missing_inputs_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as err:
        collect_photos([tmp_path / "nope"])
    assert err.value.code == "photo_missing" and "nope" in err.value.message
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError) as err:
        collect_photos([tmp_path / "empty"])
    assert err.value.code == "photo_missing" and "no photos" in err.value.message
    # wave 18: a home that does not exist and a CSV cell beyond csv's limit were internal errors
    with pytest.raises(EngineError) as err:
        collect_photos(["~no_such_user_zz/photos"])
    assert err.value.code == "photo_missing" and "~no_such_user_zz" in err.value.message
    (tmp_path / "list.txt").write_text("~no_such_user_zz/a.jpg\n")
    assert collect_photos([tmp_path / "list.txt"]) == [(tmp_path / "~no_such_user_zz" / "a.jpg").absolute()]
    (tmp_path / "huge.csv").write_text("photo\n" + "x" * 200_000 + "\n")
    with pytest.raises(EngineError) as err:
        collect_photos([tmp_path / "huge.csv"])
    assert err.value.code == "bad_image" and "huge.csv" in err.value.message and err.value.hint


def test_names_are_unique_and_stable_across_runs(tmp_path: Path) -> None:
    photos = [tmp_path / "a" / "me.jpg", tmp_path / "b" / "ME.png", tmp_path / "c" / "me.png",
              tmp_path / "batch.jsonl.png", tmp_path / ".hidden.png"]
    names = [job.name for job in assign_names(photos)]
    assert names == ["me", "ME-2", "me-3", "batch.jsonl-2", "hidden"]
    # a rerun with a new photo in front keeps the names the manifest recorded
    new = tmp_path / "0" / "me.jpg"
    jobs = assign_names([new, *photos], {str(p): n for p, n in zip(photos, names, strict=True)})
    assert [job.name for job in jobs] == ["me-4", *names]


def test_a_new_name_passes_over_the_users_own_folder(tmp_path: Path) -> None:
    """``holiday.jpg`` batched into a folder that holds the user's ``holiday/`` of photos (or a file named
    ``trip``) is named ``holiday-2``: that photo failed before wave 19 (the writer refuses to replace such a
    folder). An earlier bundle or an empty folder of the name is reused as before."""
    out = tmp_path / "out"
    (out / "holiday").mkdir(parents=True)
    (out / "holiday" / "beach.jpg").write_bytes(b"photo")
    (out / "trip").write_text("notes")
    (out / "old").mkdir()
    (out / "old" / "bundle.json").write_text("{}")
    (out / "empty").mkdir()
    photos = [tmp_path / n for n in ("holiday.jpg", "trip.png", "old.jpg", "empty.jpg")]
    assert [job.name for job in assign_names(photos, out_dir=out)] == ["holiday-2", "trip-2", "old", "empty"]
    assert [job.name for job in assign_names(photos)] == ["holiday", "trip", "old", "empty"]


def test_a_manifest_name_that_is_not_a_plain_folder_name_is_not_used(tmp_path: Path) -> None:
    """batch.jsonl is a file in a folder someone may hand over: a recorded name that would put a bundle outside the
    output folder (``..``, a path, an absolute path), a reserved or non-text name, or one another photo already has,
    is ignored and the photo named afresh (wave 18; before, ``out/../victim`` was written and replaced)."""
    photos = [tmp_path / f"p{i}.jpg" for i in range(8)]
    known = {str(photos[0]): "../victim", str(photos[1]): "/etc/x", str(photos[2]): "a/b", str(photos[3]): 7,
             str(photos[4]): "batch.jsonl", str(photos[5]): "kept", str(photos[6]): "KEPT", str(photos[7]): ".."}
    names = [job.name for job in assign_names(photos, known)]
    assert names == ["p0", "p1", "p2", "p3", "p4", "kept", "p6", "p7"]
    out = tmp_path / "out"
    assert all((out / n).resolve().parent == out.resolve() for n in names)


# ---------------------------------------------------------------------------------------------------------------
# Manifest and resume plan


def _record(photo: Path, name: str, status: str) -> dict:
    error = None if status == "done" else {"code": "no_person", "message": "m", "hint": "h"}
    return {"photo": str(photo), "name": name, "status": status, "seconds": 1.0, "warnings": [], "error": error}


def test_manifest_lines_survive_a_torn_write_and_the_last_record_wins(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    with ManifestWriter(path) as writer:
        writer.append(_record(tmp_path / "a.png", "a", "failed"))
        writer.append(_record(tmp_path / "b.png", "b", "done"))
    with open(path, "ab") as fh:  # a batch killed in the middle of a write
        fh.write(b'{"photo": "/x/c.png", "sta')
    records = read_manifest(path)
    assert set(records) == {str(tmp_path / "a.png"), str(tmp_path / "b.png")}
    with ManifestWriter(path) as writer:
        writer.append(_record(tmp_path / "a.png", "a", "done"))
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["status"] == "done"
    assert read_manifest(path)[str(tmp_path / "a.png")]["status"] == "done"
    with open(path, "ab") as fh:  # a line that is not ours: nested past json's recursion limit
        fh.write(b"[" * 100_000 + b"]" * 100_000 + b"\n")
    assert set(read_manifest(path)) == {str(tmp_path / "a.png"), str(tmp_path / "b.png")}


def test_plan_skips_finished_photos_and_retries_failed_ones_on_request(tmp_path: Path) -> None:
    jobs = [BatchJob(tmp_path / f"{n}.png", n) for n in ("done", "gone", "failed", "new")]
    records = {jobs[0].key: _record(jobs[0].photo, "done", "done"), jobs[1].key: _record(jobs[1].photo, "gone", "done"),
               jobs[2].key: _record(jobs[2].photo, "failed", "failed")}
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "bundle.json").write_text("{}")  # "gone" has a record but no bundle: it runs again
    plan = plan_batch(jobs, records, tmp_path)
    assert [j.name for j in plan.to_run] == ["gone", "new"]
    assert [j.name for j in plan.skipped_done] == ["done"] and [j.name for j in plan.skipped_failed] == ["failed"]
    assert [j.name for j in plan_batch(jobs, records, tmp_path, retry_failed=True).to_run] == ["gone", "failed", "new"]


def test_progress_counts_rate_and_eta() -> None:
    counts = BatchCounts(total=12, done=3, failed=1, started_at=0.0)
    assert counts.remaining == 8 and counts.eta_s(now=60.0) is None
    counts.finished_this_run = 4
    assert counts.photos_per_minute(now=120.0) == pytest.approx(2.0)
    assert counts.eta_s(now=120.0) == pytest.approx(240.0)
    assert format_duration(240) == "4m00s" and format_duration(3725) == "1h02m" and format_duration(None) == "--"
    assert "4/12" in bar_line(counts) and "failed 1" in bar_line(counts) and "left 8" in bar_line(counts)


def test_default_workers_fill_the_cores_within_memory() -> None:
    assert default_workers(16, 1) == 16 and default_workers(16, 4) == 4 and default_workers(2, 4) == 1
    assert default_workers(16, 1, memory_gib=6.0, quality="preview") == 5  # 1.2 GiB each
    assert default_workers(16, 1, memory_gib=6.0, quality="high") == 1 and default_workers(4, 1, 0.5) == 1


def test_reporter_bar_and_json_lines(tmp_path: Path) -> None:
    done = {**_record(tmp_path / "a.png", "a", "done"), "bundle": str(tmp_path / "a"), "warnings": ["w"]}
    failed = _record(tmp_path / "b.png", "b", "failed")
    stream = io.StringIO()
    reporter = BatchReporter("bar", BatchCounts(total=3, done=1), stream)
    reporter.start(to_run=2, skipped=1, workers=2, backend="local")
    reporter.finished(done)
    reporter.finished(failed)
    reporter.end(EXIT_BATCH_FAILED, tmp_path / "batch.jsonl")
    text = stream.getvalue()
    assert "3 photos, 2 to run, 1 finished earlier; 2 local workers" in text
    assert "failed: b.png: m" in text and "3/3  done 2  failed 1  left 0" in text and "--retry-failed" in text

    stream = io.StringIO()
    reporter = BatchReporter("json", BatchCounts(total=2), stream)
    reporter.start(to_run=2, skipped=0, workers=1, backend="ray")
    reporter.finished(done)
    reporter.finished(failed)
    reporter.end(EXIT_BATCH_FAILED, tmp_path / "batch.jsonl")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["batch_start", "warning", "done", "batch", "error", "batch", "batch_end"]
    assert events[2]["bundle"] == str(tmp_path / "a") and events[4]["code"] == "no_person"
    assert (events[-1]["done"], events[-1]["failed"], events[-1]["remaining"]) == (1, 1, 0)
    assert events[-1]["exit_code"] == EXIT_BATCH_FAILED and events[3]["eta_s"] is not None


# ---------------------------------------------------------------------------------------------------------------
# Command line


def test_batch_passes_every_reconstruct_option_on() -> None:
    parser = build_parser()
    args = parser.parse_args(["batch", "x.png", "--out", "o", "--quality", "high", "--device", "cpu", "--person",
                              "2", "--no-texture", "--texture-size", "512", "--faces", "3000", "--rest-pose", "A",
                              "--smplx-model", "m.npz", "--icon-data", "d"])
    options = options_from_args(args, args.batch_option_destinations)
    assert options == ReconstructOptions(quality="high", device="cpu", person_index=2, texture=False,
                                         texture_size=512, face_count=3000, rest_pose="A",
                                         smplx_model=Path("m.npz"), icon_data=Path("d"))
    reconstruct = parser._subparsers._group_actions[0].choices["reconstruct"]  # every option is shared
    assert set(shared_destinations(reconstruct)) == set(args.batch_option_destinations)


def test_batch_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == EXIT_BAD_INPUT
    assert "does not exist" in capsys.readouterr().err
    photo = _image(tmp_path / "p.png")
    assert main(["batch", str(photo), "--out", str(tmp_path / "o"), "--workers", "0"]) == EXIT_USAGE
    assert not (tmp_path / "o").exists()
    assert main(["batch", str(photo), "--out", str(photo)]) == EXIT_OUTPUT
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_second_batch_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    photo = _image(tmp_path / "p.png")
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".batch.lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(EngineError) as err:
            run_batch([photo], out, FAST_OPTIONS)
    assert err.value.code == "output" and "Another batch" in err.value.message
    assert not (out / "batch.jsonl").exists()


# ---------------------------------------------------------------------------------------------------------------
# End to end: real photos, real engine


@pytest.fixture(scope="module")
def sample_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from icon_engine.sample import write_sample_photo

    path = tmp_path_factory.mktemp("sample") / "sample.png"
    write_sample_photo(path)
    return path


def _no_person_photo(path: Path) -> Path:
    """A sky-like gradient with sensor noise: a real photo size, nobody in it."""
    rng = np.random.default_rng(0)
    y = np.linspace(0.0, 1.0, 384)[:, None, None] * np.ones((384, 256, 1))
    rgb = np.concatenate([120 + 80 * y, 160 + 40 * y, 200 - 60 * y], axis=2) + rng.normal(0, 3, (384, 256, 3))
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(path)
    return path


def _engine(*args: str, **kwargs: object) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "icon_engine", "batch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT, **kwargs)


def _assert_results(out: Path, expected: dict[str, str | None]) -> dict[str, dict]:
    """Bundle name → error code (None = done): the manifest says so, done bundles are valid, nothing else."""
    records = {rec["name"]: rec for rec in read_manifest(out / "batch.jsonl").values()}
    assert {name: (rec["error"] or {}).get("code") for name, rec in records.items()} == expected
    for name, rec in records.items():
        assert rec["status"] == ("done" if expected[name] is None else "failed")
        assert rec["seconds"] >= 0 and isinstance(rec["warnings"], list)
        if rec["status"] == "done":
            bundle = read_bundle(out / name)
            assert len(bundle.posed_mesh.faces) > 1000 and rec["bundle"] == str(out / name)
        else:
            assert rec["bundle"] is None and not (out / name).exists() and rec["error"]["message"]
    bundles = {p.name for p in out.iterdir() if p.is_dir()}
    assert bundles == {name for name, code in expected.items() if code is None}  # no partial or stray folder
    return records


@pytest.mark.slow
def test_local_batch_isolates_bad_photos_and_a_crashed_worker(tmp_path: Path, sample_png: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in ("person.png", "sub/person.png", "victim.png"):
        (photos / name).write_bytes(sample_png.read_bytes())
    (photos / "corrupt.png").write_bytes(sample_png.read_bytes()[:300])  # a truncated PNG
    _no_person_photo(photos / "nobody.png")
    out = tmp_path / "out"

    proc = _engine(str(photos), "--out", str(out), *FAST, "--workers", "2", "--progress", "json")
    events = []
    for line in proc.stdout:
        event = json.loads(line)
        events.append(event)
        if event["event"] == "started" and event["photo"].endswith("victim.png"):
            os.kill(int(event["worker"].rsplit(":", 1)[1]), signal.SIGKILL)  # a worker crash mid-photo
    assert proc.wait(timeout=600) == EXIT_BATCH_FAILED
    records = _assert_results(out, {"corrupt": "bad_image", "nobody": "no_person", "person": None, "person-2": None,
                                    "victim": "worker_crash"})
    assert "SIGKILL" in records["victim"]["error"]["message"]
    same = [read_bundle(out / name).posed_mesh.vertices for name in ("person", "person-2")]
    assert np.array_equal(*same)  # the same photo gives the same avatar on any worker
    end = events[-1]
    assert end["event"] == "batch_end" and (end["done"], end["failed"], end["remaining"]) == (2, 3, 0)
    batch = [e for e in events if e["event"] == "batch"]
    assert len(batch) == 5 and all(e["photos_per_minute"] > 0 for e in batch)
    assert sum(e["event"] == "error" for e in events) == 3 and sum(e["event"] == "done" for e in events) == 2

    # a rerun runs nothing; --retry-failed runs the failed photos again: the crashed one now succeeds
    again = _engine(str(photos), "--out", str(out), *FAST, "--progress", "json")
    lines = [json.loads(line) for line in again.stdout]
    assert again.wait(timeout=600) == EXIT_BATCH_FAILED
    assert lines[0]["event"] == "batch_start" and (lines[0]["to_run"], lines[0]["skipped"]) == (0, 5)
    retry = _engine(str(photos), "--out", str(out), *FAST, "--progress", "none", "--retry-failed")
    assert retry.wait(timeout=600) == EXIT_BATCH_FAILED
    _assert_results(out, {"corrupt": "bad_image", "nobody": "no_person", "person": None, "person-2": None,
                          "victim": None})
    assert len((out / "batch.jsonl").read_text().splitlines()) == 8


def _run_until_started(photo: str, kill: Callable[[subprocess.Popen, dict], None], *args: str) -> tuple[int, dict]:
    """Run a batch with JSON progress; when ``photo`` starts, ``kill`` it. Returns the exit code and that event."""
    proc = _engine(*args, "--workers", "1", "--progress", "json", start_new_session=True)
    started = {}
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "started" and event["photo"].endswith(photo):
            started = event
            kill(proc, event)
            break
    return proc.wait(timeout=120), started


@pytest.mark.slow
def test_a_killed_batch_resumes_with_nothing_lost(tmp_path: Path, sample_png: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("p1.png", "p2.png", "p3.png"):
        (photos / name).write_bytes(sample_png.read_bytes())
    out = tmp_path / "out"
    args = (str(photos), "--out", str(out), *FAST)

    def bundles() -> set[str]:
        return {p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")}

    # SIGTERM in the middle of p2: the batch stops its worker and exits 130
    code, event = _run_until_started("p2.png", lambda proc, _: proc.send_signal(signal.SIGTERM), *args)
    assert code == EXIT_CANCELLED
    with pytest.raises(ProcessLookupError):
        os.kill(int(event["worker"].rsplit(":", 1)[1]), 0)
    assert [Path(rec["photo"]).name for rec in read_manifest(out / "batch.jsonl").values()] == ["p1.png"]
    assert bundles() == {"p1"}
    stamp = (out / "p1" / "bundle.json").stat().st_mtime_ns

    # SIGKILL of the driver and its worker in the middle of p3: p2 is kept, p3 is not presented as done
    code, _ = _run_until_started("p3.png", lambda proc, _: os.killpg(proc.pid, signal.SIGKILL), *args)
    assert code == -signal.SIGKILL
    assert [Path(rec["photo"]).name for rec in read_manifest(out / "batch.jsonl").values()] == ["p1.png", "p2.png"]
    assert bundles() == {"p1", "p2"}

    resumed = _engine(*args, "--progress", "json")
    lines = [json.loads(line) for line in resumed.stdout]
    assert resumed.wait(timeout=600) == EXIT_OK
    assert (lines[0]["to_run"], lines[0]["skipped"]) == (1, 2)
    _assert_results(out, {"p1": None, "p2": None, "p3": None})
    assert (out / "p1" / "bundle.json").stat().st_mtime_ns == stamp  # not redone
    assert not [p for p in out.iterdir() if ".partial-" in p.name]
    assert len((out / "batch.jsonl").read_text().splitlines()) == 3


@pytest.mark.slow
def test_the_same_batch_on_a_local_ray_cluster(tmp_path: Path, sample_png: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray==2.60.0)")
    from icon_engine.batch.ray_backend import job_runtime_env

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "person.png").write_bytes(sample_png.read_bytes())
    (photos / "corrupt.png").write_bytes(sample_png.read_bytes()[:300])
    _no_person_photo(photos / "nobody.png")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 2**20,
                 _temp_dir=temp, runtime_env=job_runtime_env())
    except Exception as exc:  # noqa: BLE001 - any failure to start means: this machine cannot run Ray
        shutil.rmtree(temp, ignore_errors=True)
        pytest.skip(f"Ray cannot start here: {type(exc).__name__}: {exc}")
    killed: list[str] = []

    class KillFirstActor(io.StringIO):
        """JSON progress sink that SIGKILLs the actor holding person.png once: a transient failure to retry."""

        def write(self, text: str) -> int:
            for line in text.splitlines():
                event = json.loads(line)
                if event["event"] == "started" and event["photo"].endswith("person.png") and not killed:
                    killed.append(event["worker"])
                    os.kill(int(event["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
            return super().write(text)

    events = KillFirstActor()
    try:
        result = run_batch([photos], tmp_path / "out", FAST_OPTIONS, ray="auto", progress="json", stream=events)
        assert ray.is_initialized()  # the batch used the test's cluster and left it to the test
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    assert (result.exit_code, result.done, result.failed, result.ran) == (EXIT_BATCH_FAILED, 1, 2, 3)
    records = _assert_results(tmp_path / "out", {"corrupt": "bad_image", "nobody": "no_person", "person": None})
    assert killed and records["person"]["worker"] != killed[0]  # Ray restarted the actor and retried the photo
    assert records["person"]["worker"].rsplit(":", 1)[1] != str(os.getpid())  # it ran in a Ray worker
    assert [json.loads(line)["event"] for line in events.getvalue().splitlines()][-1] == "batch_end"


def _report_thread_counts(queue) -> None:  # runs in a spawned worker process
    counts = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    try:
        import numpy  # noqa: F401 - the BLAS pool is sized when numpy loads it
        from threadpoolctl import threadpool_info
    except ImportError:  # threadpoolctl is not a requirement: the environment is what decides
        blas = None
    else:
        blas = sorted({i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openblas"})
    queue.put((counts, blas))


def test_batch_workers_start_with_their_blas_pool_sized() -> None:
    """A local batch worker must start with the thread variables in its environment: OpenBLAS reads its count when
    numpy loads, and the worker module imports numpy before :func:`limit_threads` runs (before wave 35 every worker
    had an OpenBLAS pool of all the machine's cores). This process's own environment is left as it was."""
    from multiprocessing import get_context

    from icon_engine.batch.worker import child_thread_environment

    before = os.environ.get("OPENBLAS_NUM_THREADS")
    ctx = get_context("spawn")
    queue = ctx.Queue()
    with child_thread_environment(1):
        child = ctx.Process(target=_report_thread_counts, args=(queue,))
        child.start()
    counts, blas = queue.get(timeout=120)
    child.join(60)
    assert counts == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    assert blas in (None, [1])
    assert os.environ.get("OPENBLAS_NUM_THREADS") == before
