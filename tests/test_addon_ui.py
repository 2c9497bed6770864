"""The add-on registered in headless Blender: preferences, sidebar operators, the job timer's work (driven by
hand, timers never fire headless) with a fake engine speaking the JSON-lines protocol, and clean unregister."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
import addon_utils  # noqa: E402
from test_blender_bundle import make_bundle  # noqa: E402

FAKE = textwrap.dedent(
    """
    import json, os, shutil, sys, time
    args = sys.argv[1:]
    def emit(**kw):
        print(json.dumps(kw), flush=True)
    if args[:3] == ["-m", "icon_engine", "doctor"]:
        print(json.dumps({"engine": "0.1.0", "device": {"torch": "2.13.0", "cuda": False, "note": "CPU only"},
                          "packages": {"torch": "2.13.0", "mediapipe": None},
                          "body_model": {"problem": "no body model", "how_to_enable": "build it"}}))
        sys.exit(0)
    def run_subject(args, **tag):  # reconstruct --subject IN... : one bundle, progress per photo
        inputs = args[args.index("--subject") + 1 : args.index("--out")]
        out = args[args.index("--out") + 1]
        assert "--frames" in args and "--progress" in args
        name = os.path.splitext(os.path.basename(inputs[0].rstrip("/")))[0]
        for k, item in enumerate(inputs):
            n = len(inputs)
            emit(event="progress", photo=name, stage="fit", fraction=k / n, overall=0.1 + 0.3 * k / n,
                 message=f"Fitting {os.path.basename(item)} ({k + 1}/{n})", **tag)
            time.sleep(120 if "slow" in item else 0.3)
        emit(event="progress", photo=name, stage="rig", fraction=0.0, overall=0.6,
             message="Refining the surface (1/3)", **tag)  # a counter that is not a photo
        time.sleep(0.3)
        shutil.copytree(os.environ["FAKE_SUBJECT_BUNDLE"], os.path.join(out, name))
        emit(event="done", photo=name, bundle=os.path.join(out, name), **tag)
        return 0
    def run(args, **tag):
        if "--subject" in args:
            return run_subject(args, **tag)
        photo = args[args.index("reconstruct") + 1]
        out = args[args.index("--out") + 1]
        stem = os.path.splitext(os.path.basename(photo))[0]
        assert "--progress" in args and os.environ["PYTHONPATH"]
        emit(event="progress", photo=stem, stage="fit", fraction=0.5, overall=0.3, message="Fitting the body", **tag)
        if stem == "slow":
            time.sleep(120)
        if stem == "noone":
            emit(event="error", photo=stem, code="no_person", message="No person found.",
                 hint="Use a photo of a person.", **tag)
            return 4
        shutil.copytree(os.environ["FAKE_BUNDLE"], os.path.join(out, stem))
        emit(event="warning", photo=stem, message="the person touches the border", **tag)
        emit(event="done", photo=stem, bundle=os.path.join(out, stem), **tag)
        return 0
    if args[:3] == ["-m", "icon_engine", "serve"]:  # the warm engine: jobs as JSON lines on stdin
        with open(os.environ["FAKE_BUNDLE"] + ".servers", "a") as fh:
            fh.write(f"{os.getpid()}\\n")
        emit(event="ready", engine_version="fake")
        for line in sys.stdin:
            req = json.loads(line)
            if req.get("op") == "run":
                code = run(["-m", "icon_engine"] + req["argv"], job=req["job"])
                status = "done" if code == 0 else "failed"
                emit(event="finished", job=req["job"], status=status, exit_code=code)
        sys.exit(0)
    sys.exit(run(args))
    """
)

ADDON = "icon_blender"


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("addon")
    bundle = make_bundle(tmp / "template")
    script = tmp / "fake_engine.py"
    script.write_text(FAKE)
    python = tmp / "python"  # an "interpreter" that runs the fake engine
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    os.environ["FAKE_BUNDLE"] = str(bundle)
    os.environ["FAKE_SUBJECT_BUNDLE"] = str(make_bundle(tmp / "subject_template", views=3))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable(ADDON, default_set=True)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.env_mode = "CUSTOM"
    prefs.python_path = str(python)
    prefs.warm_engine = False  # one process per job here; test_warm_engine_serves_every_job covers the warm one
    from icon_blender.ui import state

    real_user_dir = state.user_dir

    def user_dir(*parts: str) -> Path:  # keep the tests out of the real Blender user folder
        path = tmp.joinpath("user", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    state.user_dir = user_dir
    yield tmp
    state.user_dir = real_user_dir
    addon_utils.disable(ADDON, default_set=True)
    os.environ.pop("FAKE_BUNDLE", None)
    os.environ.pop("FAKE_SUBJECT_BUNDLE", None)


@pytest.fixture()
def photo(addon):
    def make(stem: str) -> str:
        path = addon / f"{stem}.jpg"
        path.write_bytes(b"\xff\xd8\xff")  # the fake engine never reads it
        bpy.context.scene.icon_settings.photo = str(path)
        return str(path)

    return make


def run_timer(timeout: float = 30.0) -> None:
    from icon_blender.ui import state

    end = time.monotonic() + timeout
    while state.tick() is not None:
        assert time.monotonic() < end, "jobs did not finish"
        time.sleep(0.02)


def test_registered_parts(addon):
    prefs = bpy.context.preferences.addons[ADDON].preferences
    assert prefs.env_mode == "CUSTOM" and prefs.quality == "standard" and prefs.device == "auto"
    assert hasattr(bpy.types, "ICON_PT_reconstruct") and hasattr(bpy.types, "ICON_PT_avatar")
    assert hasattr(bpy.types, "ICON_OT_reconstruct")
    assert bpy.context.scene.icon_settings.quality == "default"
    for op in ("reconstruct", "cancel", "import_bundle", "rest_pose", "apply_motion", "export_fbx", "setup_engine",
               "check_engine"):
        assert hasattr(bpy.ops.icon, op)


def test_reconstruct_without_photo_reports_clearly(addon):
    bpy.context.scene.icon_settings.photo = ""
    with pytest.raises(RuntimeError, match="Choose a photo"):
        bpy.ops.icon.reconstruct()


def test_reconstruct_queue_imports_results(addon, photo):
    from icon_blender.ui import state

    n_before = len(bpy.context.scene.collection.children)
    bpy.context.preferences.addons[ADDON].preferences.quality = "high"
    photo("alice")
    assert bpy.ops.icon.reconstruct() == {"FINISHED"}
    bpy.context.scene.icon_settings.quality = "preview"
    photo("bob")
    assert bpy.ops.icon.reconstruct() == {"FINISHED"}  # queued behind alice
    rec = state.reconstructions
    assert len(rec.queue.jobs) == 2
    # the scene's "Default" quality follows the preferences; an explicit choice wins; --progress json always
    assert [j.command[j.command.index("--quality") + 1] for j in rec.queue.jobs] == ["high", "preview"]
    assert all("--progress" in j.command for j in rec.queue.jobs)
    state.tick()
    assert rec.current is not None and rec.current.photo == "alice.jpg" and len(rec.pending) == 1
    run_timer()
    names = [c.name for c in bpy.context.scene.collection.children][n_before:]
    assert names == ["ICON alice", "ICON bob"]
    assert any("touches the border" in text for _, text in state.messages)
    arm = bpy.data.collections["ICON alice"].objects["alice_rig"]
    assert Path(arm["icon_bundle"]).parent.parent == state.user_dir("results")


def test_warm_engine_serves_every_job_and_ends_with_the_addon(addon, photo):
    from icon_blender.core import engine_proc as ep
    from icon_blender.ui import state

    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.warm_engine = True
    servers = Path(os.environ["FAKE_BUNDLE"] + ".servers")
    try:
        for stem in ("dora", "noone", "emil"):
            photo(stem)
            bpy.ops.icon.reconstruct()
        assert state.reconstructions.warm
        run_timer()
        assert "ICON dora" in bpy.data.collections and "ICON emil" in bpy.data.collections
        assert any("No person found." in text for level, text in state.messages if level == "ERROR")
        pids = [int(p) for p in servers.read_text().split()]
        assert len(pids) == 1  # one engine process served all three jobs
        state.kill_engines()  # what quitting Blender or disabling the add-on does
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pids[0]}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pids[0]}").exists() and ep._SHARED is None
    finally:
        prefs.warm_engine = False
        servers.unlink(missing_ok=True)


def test_engine_error_is_reported_with_hint_and_scene_untouched(addon, photo):
    from icon_blender.ui import state

    before = len(bpy.data.objects)
    photo("noone")
    bpy.ops.icon.reconstruct()
    run_timer()
    assert len(bpy.data.objects) == before
    errors = [text for level, text in state.messages if level == "ERROR"]
    assert errors and "No person found." in errors[-1] and "Use a photo of a person." in errors[-1]
    assert state.messages[-1][1].startswith("Engine log: ") and Path(state.messages[-1][1][12:]).is_file()


def test_cancel_kills_engine_and_leaves_scene_untouched(addon, photo):
    from icon_blender.ui import state

    before = len(bpy.data.objects)
    photo("slow")
    bpy.ops.icon.reconstruct()
    deadline = time.monotonic() + 30
    while (state.reconstructions.current is None or state.reconstructions.current.stage != "fit"):
        state.tick()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job = state.reconstructions.current
    t0 = time.monotonic()
    assert bpy.ops.icon.cancel() == {"FINISHED"}
    assert time.monotonic() - t0 < 1.0  # the engine is gone within a second
    assert job.state == "cancelled" and job.returncode is not None
    assert not job.out_dir.exists()  # no empty result folder left behind
    assert not state.reconstructions.active and len(bpy.data.objects) == before
    assert state.tick() is None


def test_avatar_operators(addon, photo, tmp_path):

    photo("carol")
    bpy.ops.icon.reconstruct()
    run_timer()
    arm = bpy.data.objects["carol_rig"]
    bpy.context.view_layer.objects.active = bpy.data.objects["carol_mesh"]  # the mesh selects its armature too
    assert bpy.ops.icon.rest_pose() == {"FINISHED"} and arm.data.pose_position == "REST"
    bpy.ops.icon.rest_pose()
    assert arm.data.pose_position == "POSE"
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 24, 1.0
    np.savez(tmp_path / "m.npz", poses=np.zeros((10, 165)), trans=np.zeros((10, 3)), fps=30.0)
    assert bpy.ops.icon.apply_motion(filepath=str(tmp_path / "m.npz")) == {"FINISHED"}
    assert bpy.context.scene.frame_end == 8 and arm.animation_data.action.name.startswith("m motion")
    np.savez(tmp_path / "bad.npz", poses=np.zeros((10, 12)), fps=30.0)
    with pytest.raises(RuntimeError, match="165"):
        bpy.ops.icon.apply_motion(filepath=str(tmp_path / "bad.npz"))
    assert bpy.ops.icon.export_fbx(filepath=str(tmp_path / "c.fbx"), preset="unity") == {"FINISHED"}
    assert (tmp_path / "c.fbx").stat().st_size > 10_000
    assert bpy.ops.icon.export_gltf(filepath=str(tmp_path / "c.glb"), preset="web", bone_names="unity") == {"FINISHED"}
    assert bpy.ops.icon.export_usd(filepath=str(tmp_path / "c.usdz")) == {"FINISHED"}
    assert bpy.ops.icon.export_bvh(filepath=str(tmp_path / "c.bvh")) == {"FINISHED"}
    assert min((tmp_path / n).stat().st_size for n in ("c.glb", "c.usdz", "c.bvh")) > 1000
    assert b"LeftUpperArm" in (tmp_path / "c.glb").read_bytes() and "left_shoulder" in arm.data.bones
    assert bpy.ops.icon.apply_motion(filepath=str(tmp_path / "c.bvh"), frame_start=5, action_name="again",
                                     nla=True) == {"FINISHED"}
    assert arm.animation_data.nla_tracks[-1].strips[0].frame_start == 5


def test_import_bundle_operator_refuses_a_bad_folder(addon, tmp_path):
    with pytest.raises(RuntimeError, match="bundle.json is missing"):
        bpy.ops.icon.import_bundle(directory=str(tmp_path))


def test_check_engine_shows_the_doctor(addon):
    from icon_blender.ui import state

    assert bpy.ops.icon.check_engine() == {"FINISHED"}  # returns at once: the doctor runs on a thread
    assert state.doctor_run is not None and bpy.app.timers.is_registered(state.doctor_tick)
    deadline = time.monotonic() + 30
    while state.doctor_tick() is not None:  # the timer, fired by hand
        assert time.monotonic() < deadline
        time.sleep(0.02)
    labels = {label: (text, ok) for label, text, ok in state.doctor}
    assert labels["Device"] == ("CPU only", True)
    assert labels["Missing"][1] is False and labels["Missing"][0].startswith("mediapipe not installed")
    assert labels["Body model"] == ("no body model", False)


def test_jobs_survive_loading_another_file(addon, photo, tmp_path):
    """Timers are persistent and the load_post handler re-arms them: the job goes on, is reported, and its
    result is imported into the file that was opened."""
    from icon_blender.ui import state

    photo("dave")
    bpy.ops.icon.reconstruct()
    assert bpy.app.timers.is_registered(state.tick)
    assert state.on_load_post in bpy.app.handlers.load_post
    blend = tmp_path / "other.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))  # fires load_post
    assert bpy.app.timers.is_registered(state.tick)
    assert any("continue after loading the file" in text for _, text in state.messages)
    run_timer()
    assert "dave_rig" in bpy.data.objects and bpy.data.filepath == str(blend)


def test_results_wait_for_sculpt_mode_then_import_as_one_undo_step(addon, photo):
    from icon_blender.ui import state

    mesh = bpy.data.meshes.new("clay")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    clay = bpy.data.objects.new("clay", mesh)
    bpy.context.scene.collection.objects.link(clay)
    bpy.context.view_layer.objects.active = clay
    bpy.ops.object.mode_set(mode="SCULPT")
    bpy.ops.ed.undo_push(message="before")
    photo("erin")
    bpy.ops.icon.reconstruct()
    deadline = time.monotonic() + 30
    while not state.waiting:
        assert state.tick() is not None and time.monotonic() < deadline
        time.sleep(0.02)
    assert "erin_rig" not in bpy.data.objects and bpy.context.mode == "SCULPT"
    assert any("imported when Sculpt mode ends" in text for _, text in state.messages)
    assert state.tick() is not None  # keeps waiting
    bpy.ops.object.mode_set(mode="OBJECT")
    assert state.tick() is None and not state.waiting
    arm, body = bpy.data.objects["erin_rig"], bpy.data.objects["erin_mesh"]
    assert bpy.context.view_layer.objects.active == arm and arm.select_get() and body.select_get()
    assert not clay.select_get()
    n_objects = len(bpy.data.objects)
    bpy.ops.ed.undo()  # one step removes the whole import
    assert "erin_rig" not in bpy.data.objects and "erin_mesh" not in bpy.data.objects
    assert "ICON erin" not in bpy.data.collections and len(bpy.data.objects) == n_objects - 3
    bpy.ops.ed.redo()
    assert "erin_rig" in bpy.data.objects


def test_several_photos_height_output_folder_history_and_log(addon, photo, tmp_path, monkeypatch):
    from icon_blender import jobs
    from icon_blender.ui import state

    prefs = bpy.context.preferences.addons[ADDON].preferences
    out = tmp_path / "my results"
    prefs.results_dir = str(out)
    try:
        for stem in ("fay", "gus"):
            photo(stem)
        bpy.context.scene.icon_settings.height = 1.82
        assert jobs.engine_supports(state.engine_env()["PYTHONPATH"].split(os.pathsep)[0], "--height")
        # an engine without --height: the option is not passed (it would be refused) and the user is told
        monkeypatch.setattr(jobs, "engine_supports", lambda source, option: False)
        assert bpy.ops.icon.reconstruct_photos(directory=str(addon), files=[{"name": "fay.jpg"}, {"name": "gus.jpg"}],
                                               several_photos="SEPARATE") == {"FINISHED"}
        rec = state.reconstructions
        assert rec.results_dir == out and [j.photo for j in rec.pending] == ["fay.jpg", "gus.jpg"]
        assert all("--height" not in j.command for j in rec.queue.jobs)
        text = state.status_text()
        assert text.startswith("ICON: starting") and "(+2 queued)" in text
        run_timer()
        assert state.status_text() is None
        assert {"fay_rig", "gus_rig"} <= set(bpy.data.objects.keys())
        # an engine that has --height gets it, in metres
        monkeypatch.setattr(jobs, "engine_supports", lambda source, option: option == "--height")
        photo("hal")
        bpy.ops.icon.reconstruct()
        job = state.reconstructions.pending[-1]
        assert job.command[-2:] == ["--height", "1.820"]
        run_timer()
        # history: newest first, re-import, delete (only inside the output folder)
        results = jobs.list_results(out)
        assert [r.photo for r in results][:1] == ["synthetic.jpg"] and len(results) == 3
        n_rigs = sum(o.type == "ARMATURE" for o in bpy.data.objects)
        assert bpy.ops.icon.history_import(path=str(results[-1].bundle)) == {"FINISHED"}
        assert sum(o.type == "ARMATURE" for o in bpy.data.objects) == n_rigs + 1
        assert bpy.ops.icon.history_delete("EXEC_DEFAULT", path=str(results[0].bundle)) == {"FINISHED"}
        assert not results[0].run_dir.exists() and len(jobs.list_results(out)) == 2
        with pytest.raises(ValueError, match="not a result"):
            jobs.delete_result(addon / "template", out)
        assert (addon / "template" / "bundle.json").is_file()
        # Open Log finds this session's newest engine log
        assert state.latest_log() == state.reconstructions.queue.jobs[-1].log_path
        assert state.latest_log().parent == out / "logs"
        assert bpy.ops.icon.open_log() == {"FINISHED"}
    finally:
        bpy.context.scene.icon_settings.height = 0.0
        prefs.results_dir = ""


def test_automatic_environment_states_reach_the_user(addon, photo, tmp_path):
    """Engine folder preference, set-up stamp: not set up / interrupted / ready, each with its message."""
    from icon_blender.core import env_setup
    from icon_blender.engine_link import engine_requirements
    from icon_blender.ui import state

    prefs = bpy.context.preferences.addons[ADDON].preferences
    venv = tmp_path / "engine"
    prefs.env_mode, prefs.env_dir = "AUTO", str(venv)
    try:
        assert state.default_venv() == venv
        photo("ivy")
        with pytest.raises(RuntimeError, match="not set up yet"):
            bpy.ops.icon.reconstruct()
        python = env_setup.venv_python(venv)
        python.parent.mkdir(parents=True)
        python.write_text("")
        with pytest.raises(RuntimeError, match="did not finish"):
            bpy.ops.icon.reconstruct()
        env_setup.write_stamp(venv, engine_requirements(), "cpu")
        assert state.engine_python() == str(python)
    finally:
        prefs.env_mode, prefs.env_dir = "CUSTOM", ""
        prefs.python_path = str(addon / "python")


def test_setup_engine_honours_offline_mode(addon):
    assert not bpy.app.online_access  # the bpy module runs offline
    with pytest.raises(RuntimeError, match="online access"):
        bpy.ops.icon.setup_engine()


def test_unregister_leaves_nothing_behind(addon, photo):
    from icon_blender.ui import state

    photo("slow")
    bpy.ops.icon.reconstruct()
    state.tick()
    proc = state.reconstructions.current._proc
    assert proc.poll() is None
    addon_utils.disable(ADDON, default_set=True)
    try:
        assert proc.wait(timeout=10) is not None  # the running engine was stopped
        assert not hasattr(bpy.types, "ICON_PT_reconstruct") and not hasattr(bpy.types, "ICON_OT_reconstruct")
        assert not hasattr(bpy.types.Scene, "icon_settings")
        assert ADDON not in bpy.context.preferences.addons
        from icon_blender.ui import state

        assert not bpy.app.timers.is_registered(state.tick) and state.reconstructions is None
        assert state.on_load_post not in bpy.app.handlers.load_post
    finally:
        addon_utils.enable(ADDON, default_set=True)


class StrictLayout:
    """Stands in for UILayout in draw() (no UI headless); every call must exist in UILayout's RNA with those
    keyword names, and ``prop`` must name a real property of its data."""

    def __init__(self, log: list) -> None:
        self._log = log

    def __getattr__(self, name):
        funcs = bpy.types.UILayout.bl_rna.functions
        assert name in funcs, f"UILayout has no {name}()"
        params = [p.identifier for p in funcs[name].parameters if not p.is_output]

        def call(*args, **kwargs):
            assert len(args) <= len(params) and set(kwargs) <= set(params), (name, args, kwargs, params)
            if name in ("prop",):
                data, prop = args[0], args[1]
                assert prop in data.bl_rna.properties, f"{type(data).__name__} has no property {prop}"
            if name == "operator":
                op = args[0].split(".")
                assert hasattr(getattr(bpy.ops, op[0]), op[1]), args[0]
            self._log.append((name, args, kwargs))
            return StrictLayout(self._log)

        return call


def test_panels_and_preferences_draw(addon, photo, tmp_path):
    from icon_blender.ui import panel, prefs, state

    class Proxy:
        def __init__(self, target, log):
            self.layout = StrictLayout(log)
            self._target = target

        def __getattr__(self, name):
            return getattr(self._target, name)

    log: list = []
    p = bpy.context.preferences.addons[ADDON].preferences
    p.env_mode, p.python_path = "CUSTOM", str(addon / "python")  # re-enabled by the unregister test
    photo("slow")
    bpy.ops.icon.reconstruct()
    photo("alice")
    bpy.ops.icon.reconstruct()
    state.tick()
    img = tmp_path / "thumb.png"
    bpy.data.images.new("t", 4, 4).save(filepath=str(img))
    bpy.context.scene.icon_settings.photo = str(img)
    try:
        panel.ICON_PT_reconstruct.draw(Proxy(None, log), bpy.context)
        names = [entry[0] for entry in log]
        assert "progress" in names or "label" in names
        assert ("operator", ("icon.cancel",), {"text": "", "icon": "CANCEL"}) in log
        assert any(e[0] == "label" and "Queued: alice.jpg" in e[2].get("text", "") for e in log)
        # the thumbnail is loaded; headless Blender renders no icons (id 0), so it is drawn only when it has one
        assert str(img) in state.previews
        assert ("template_icon" in names) == (state.photo_icon(str(img)) != 0)
    finally:
        bpy.ops.icon.cancel()
    log.clear()
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE" and "icon_bundle" in o)
    bpy.context.view_layer.objects.active = arm
    panel.ICON_PT_avatar.draw(Proxy(None, log), bpy.context)
    assert [e[1][0] for e in log if e[0] == "operator"] == [
        "icon.import_bundle", "icon.rest_pose", "icon.apply_motion", "icon.export_bvh", "icon.export_fbx",
        "icon.export_gltf", "icon.export_usd"]
    log.clear()
    panel.ICON_PT_history.draw(Proxy(None, log), bpy.context)
    ops = [e[1][0] for e in log if e[0] == "operator"]
    assert ops[-1] == "icon.open_log" and ops.count("icon.history_import") == ops.count("icon.history_delete") >= 1
    for mode in ("AUTO", "CUSTOM"):
        p.env_mode = mode
        log.clear()
        prefs.ICONPreferences.draw(Proxy(p, log), bpy.context)
        ops = [e[1][0] for e in log if e[0] == "operator"]
        assert "icon.check_engine" in ops and (("icon.setup_engine" in ops) == (mode == "AUTO"))


def _inputs(addon, *names: str) -> list[str]:
    paths = []
    for name in names:
        path = addon / name
        path.write_bytes(b"\xff\xd8\xff")  # the fake engine never reads them
        paths.append(str(path))
    return paths


def test_several_photos_make_one_avatar_with_progress_per_photo(addon):
    """One person: ONE engine job (``reconstruct --subject``) through the warm engine, the panel and status bar
    saying which photo it works on, then one avatar with every photo's pose."""
    from icon_blender.ui import state

    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.warm_engine = True
    settings = bpy.context.scene.icon_settings
    settings.several_photos, settings.frames = "ONE", 5
    _inputs(addon, "ann_front.jpg", "ann_side.jpg", "ann_back.jpg")
    n_rigs = sum(o.type == "ARMATURE" for o in bpy.data.objects)
    try:
        assert bpy.ops.icon.reconstruct_photos(directory=str(addon), files=[
            {"name": "ann_front.jpg"}, {"name": "ann_side.jpg"}, {"name": "ann_back.jpg"}]) == {"FINISHED"}
        rec = state.reconstructions
        assert rec.warm and len(rec.pending) == 1
        job = rec.pending[0]
        assert job.photo == "ann_front.jpg + 2 more"
        cmd = job.command
        assert cmd[3:5] == ["reconstruct", "--subject"] and cmd[5:8] == _inputs(addon, "ann_front.jpg", "ann_side.jpg",
                                                                                  "ann_back.jpg")
        assert cmd[cmd.index("--frames") + 1] == "5" and cmd[cmd.index("--progress") + 1] == "json"
        seen, status = [], []
        deadline = time.monotonic() + 60
        while state.tick() is not None:
            assert time.monotonic() < deadline
            if rec.current is not None and rec.current.text not in seen:
                seen.append(rec.current.text)
                status.append(state.status_text())
            time.sleep(0.02)
        steps = [t for t in seen if t.startswith("photo ")]
        assert steps == ["photo 1/3: Fitting ann_front.jpg", "photo 2/3: Fitting ann_side.jpg",
                         "photo 3/3: Fitting ann_back.jpg"], seen
        assert any(t and "ann_front.jpg + 2 more" in t and "photo 2/3" in t for t in status), status
        assert "Refining the surface (1/3)" in seen  # the fusion's refinement levels are not photos
        assert sum(o.type == "ARMATURE" for o in bpy.data.objects) == n_rigs + 1  # ONE avatar
        arm = bpy.data.objects["ann_front_rig"]
        from icon_blender.blender.importer import photo_pose_names

        assert [p[0] for p in photo_pose_names(arm)] == ["front.jpg", "view1.jpg", "view2.jpg"]
    finally:
        prefs.warm_engine = False
        state.kill_engines()


def test_several_photos_folder_video_and_bad_choices(addon):
    from icon_blender.ui import state

    settings = bpy.context.scene.icon_settings
    settings.several_photos, settings.frames = "ONE", 4
    folder = addon / "shots"
    folder.mkdir(exist_ok=True)
    _inputs(folder, "b.jpg", "a.png")
    video = _inputs(addon, "turn.mp4")[0]
    # a folder picked with nothing selected: ONE avatar from the folder (the engine expands it) ...
    assert bpy.ops.icon.reconstruct_photos(directory=str(folder), files=[]) == {"FINISHED"}
    job = state.reconstructions.pending[-1]
    assert job.command[5] == str(folder) + os.sep or job.command[5] == str(folder)
    # ... or one avatar per photo of it, by name
    assert bpy.ops.icon.reconstruct_photos(directory=str(folder), files=[], several_photos="SEPARATE") == {"FINISHED"}
    assert [j.photo for j in state.reconstructions.pending[-2:]] == ["a.png", "b.jpg"]
    # a video joins a subject with its frames count; alone in "separate" it is refused with the way out
    assert bpy.ops.icon.reconstruct_photos(directory=str(addon), files=[{"name": "turn.mp4"}]) == {"FINISHED"}
    job = state.reconstructions.pending[-1]
    assert job.command[5] == video and job.command[job.command.index("--frames") + 1] == "4"
    with pytest.raises(RuntimeError, match="turn.mp4 is a video.*One person"):
        bpy.ops.icon.reconstruct_photos(directory=str(addon), files=[{"name": "turn.mp4"}], several_photos="SEPARATE")
    # more images than one avatar takes (2 videos × 12 frames): refused before anything is queued
    settings.frames = 12
    _inputs(addon, "turn2.mp4")
    n_jobs = len(state.reconstructions.queue.jobs)
    with pytest.raises(RuntimeError, match="more than the 20 images"):
        bpy.ops.icon.reconstruct_photos(directory=str(addon), files=[{"name": "turn.mp4"}, {"name": "turn2.mp4"}])
    with pytest.raises(RuntimeError, match="Not found"):
        bpy.ops.icon.reconstruct_photos(directory=str(addon), files=[{"name": "nobody.jpg"}])
    assert len(state.reconstructions.queue.jobs) == n_jobs
    bpy.ops.icon.cancel()



def test_the_photo_picker_offers_every_format_the_engine_reads(addon):
    """A phone's HEIC (or an AVIF) can be picked and is taken from a folder, as the engine takes it."""
    from icon_blender.ui.operators import PHOTO_GLOB, folder_photos
    from icon_engine.image_io import IMAGE_SUFFIXES

    assert {glob[1:] for glob in PHOTO_GLOB.split(";")} == set(IMAGE_SUFFIXES)
    folder = addon / "phone"
    folder.mkdir(exist_ok=True)
    _inputs(folder, "IMG_0002.HEIC", "IMG_0001.heic", "c.avif", "notes.txt")
    assert [Path(p).name for p in folder_photos(folder)] == ["IMG_0001.heic", "IMG_0002.HEIC", "c.avif"]

def test_cancel_during_one_avatar_from_several_photos_leaves_scene_untouched(addon):
    from icon_blender.ui import state

    bpy.context.scene.icon_settings.several_photos = "ONE"
    _inputs(addon, "cy_front.jpg", "cy_slow.jpg", "cy_back.jpg")
    before = {k: len(getattr(bpy.data, k)) for k in ("objects", "actions", "cameras", "collections")}
    assert bpy.ops.icon.reconstruct_photos(directory=str(addon), files=[
        {"name": "cy_front.jpg"}, {"name": "cy_slow.jpg"}, {"name": "cy_back.jpg"}]) == {"FINISHED"}
    deadline = time.monotonic() + 30
    while state.reconstructions.current is None or state.reconstructions.current.step != (2, 3):
        state.tick()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job = state.reconstructions.current
    assert job.text == "photo 2/3: Fitting cy_slow.jpg"
    t0 = time.monotonic()
    assert bpy.ops.icon.cancel() == {"FINISHED"}
    assert time.monotonic() - t0 < 1.0
    assert job.state == "cancelled" and not job.out_dir.exists() and not state.reconstructions.active
    assert {k: len(getattr(bpy.data, k)) for k in before} == before
    assert state.tick() is None


def test_avatar_panel_flips_between_photo_poses(addon, tmp_path):
    from icon_blender.blender.importer import import_bundle
    from icon_blender.ui import panel

    res = import_bundle(os.environ["FAKE_SUBJECT_BUNDLE"], bpy.context.scene, name="flip")
    bpy.context.view_layer.objects.active = res.armature
    log: list = []

    class Proxy:
        layout = StrictLayout(log)

    panel.ICON_PT_avatar.draw(Proxy(), bpy.context)
    ops = [e for e in log if e[0] == "operator" and e[1][0] == "icon.photo_pose"]
    assert [e[2]["text"] for e in ops] == ["1: front.jpg", "2: view1.jpg", "3: view2.jpg"]
    assert [e[2]["depress"] for e in ops] == [True, False, False]
    assert bpy.ops.icon.photo_pose(index=2) == {"FINISHED"}
    assert res.armature.animation_data.action.name == "flip pose 3 view2.jpg"
    assert bpy.context.scene.camera.name == "flip_camera 3" and not bpy.context.scene.camera.hide_get()
    assert res.camera.hide_get()
    with pytest.raises(RuntimeError, match="no pose 4"):
        bpy.ops.icon.photo_pose(index=3)
