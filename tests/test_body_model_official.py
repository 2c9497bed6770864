"""The official SMPL-X loader, tested with stand-ins the tests write in the official key layout, and broken files."""

from __future__ import annotations

import argparse
import functools
import io
import os
import pickle
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

from icon_engine.body_model import convert_pkl, describe_body_model, load_body_model
from icon_engine.body_model.cli import add_parser
from icon_engine.bundle.skeleton import PARENTS
from icon_engine.errors import EngineError

V = 10475  # SMPL-X's vertex count
F = 20908


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICON_ENGINE_CACHE", str(tmp_path / "cache"))


@functools.cache
def _standin(seed: int) -> dict[str, np.ndarray]:
    return _make_standin(seed)


def standin_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A fresh dict (shared read-only arrays) of the stand-in model."""
    return dict(_standin(seed))


def _make_standin(seed: int) -> dict[str, np.ndarray]:
    """Random but well-formed arrays in the official SMPLX_NEUTRAL.npz key layout (10 shape + 10 expr)."""
    rng = np.random.default_rng(seed)
    v = rng.uniform([-0.3, -1.2, -0.15], [0.3, 0.5, 0.15], size=(V, 3))
    weights = rng.uniform(size=(V, 55)) * (rng.uniform(size=(V, 55)) < 0.05)
    weights[np.arange(V), rng.integers(0, 55, V)] += 1.0
    reg = rng.uniform(size=(55, V)) * (rng.uniform(size=(55, V)) < 0.01)
    reg /= reg.sum(1, keepdims=True)
    kintree = np.array([[4294967295 if p < 0 else p for p in PARENTS], list(range(55))], dtype=np.uint32)
    return {
        "v_template": v,
        "f": rng.integers(0, V, size=(F, 3)).astype(np.uint32),
        "shapedirs": rng.normal(scale=0.01, size=(V, 3, 20)),
        "posedirs": np.zeros((V, 3, 486), np.float32),
        "J_regressor": reg,
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": kintree,
        "hands_meanl": rng.normal(scale=0.1, size=45),
        "hands_meanr": rng.normal(scale=0.1, size=45),
        "hands_componentsl": rng.normal(size=(45, 45)),
        "hands_componentsr": rng.normal(size=(45, 45)),
        "lmk_faces_idx": rng.integers(0, F, 51),
        "lmk_bary_coords": np.full((51, 3), 1 / 3),
        "vt": rng.uniform(size=(V, 2)),
        "ft": rng.integers(0, V, size=(F, 3)),
    }


def write_standin(path: Path, **changes: np.ndarray | None) -> Path:
    arrays = standin_arrays()
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


class Bomb:
    """Unpickling this creates a folder at ``marker``: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def refused(model: Path, **kwargs: str) -> EngineError:
    with pytest.raises(EngineError) as info:
        load_body_model(model, **kwargs)
    err = info.value
    assert err.code == "body_model" and err.exit_code == 5
    return err


def test_standin_loads_through_smplx(tmp_path: Path) -> None:
    from smplx.vertex_ids import vertex_ids

    path = write_standin(tmp_path / "SMPLX_NEUTRAL.npz")
    body = load_body_model(path)
    assert body.kind == "smplx" and body.num_vertices == V and body.num_betas == 10 and body.num_expression == 10
    assert tuple(body.parents.tolist()) == PARENTS and body.faces.dtype == np.int64
    out = body(betas=torch.zeros(2, 10))
    arrays = standin_arrays()
    expected = torch.tensor(arrays["J_regressor"] @ arrays["v_template"], dtype=torch.float32)
    assert torch.allclose(out.joints[0], expected, atol=1e-5)
    assert torch.equal(out.keypoints[0, 0], out.vertices[0, vertex_ids["smplx"]["nose"]])
    # flat_hand_mean: zero hand pose is the template, whatever hands_mean says
    assert torch.allclose(out.vertices[0], torch.tensor(arrays["v_template"], dtype=torch.float32), atol=1e-5)
    pose = torch.zeros(1, 63)
    pose[0, 0] = 0.5
    assert (body(body_pose=pose).vertices - out.vertices[:1]).abs().max() > 1e-3
    # the folder form finds SMPLX_{GENDER}.npz, also under smplx/
    assert load_body_model(tmp_path).num_vertices == V
    write_standin(tmp_path / "models" / "smplx" / "SMPLX_FEMALE.npz")
    assert load_body_model(tmp_path / "models", gender="female").kind == "smplx"
    write_standin(tmp_path / "v11" / "SMPLX_NEUTRAL_2020.npz")
    assert load_body_model(tmp_path / "v11").path.name == "SMPLX_NEUTRAL_2020.npz"


def test_extra_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    arrays = standin_arrays()
    arrays["part2num"] = np.array([Bomb(marker)], dtype=object)
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(path, **arrays)
    body = load_body_model(path)
    assert body.num_vertices == V and not marker.exists()
    assert body.path == path and body.kind == "smplx"


def test_missing_gender_file_in_folder(tmp_path: Path) -> None:
    write_standin(tmp_path / "SMPLX_NEUTRAL.npz")
    err = refused(tmp_path, gender="male")
    assert "SMPLX_MALE.npz" in err.message and "smpl-x.is.tue.mpg.de" in err.hint


def test_missing_path(tmp_path: Path) -> None:
    err = refused(tmp_path / "nope.npz")
    assert "does not exist" in err.message


def test_missing_key_is_named(tmp_path: Path) -> None:
    err = refused(write_standin(tmp_path / "a.npz", J_regressor=None))
    assert "J_regressor" in err.message and "smpl-x.is.tue.mpg.de" in err.hint


def test_wrong_shape_is_named(tmp_path: Path) -> None:
    err = refused(write_standin(tmp_path / "a.npz", weights=np.full((V, 54), 1 / 54)))
    assert "weights" in err.message and "(10475, 54)" in err.message


def test_inconsistent_vertex_count(tmp_path: Path) -> None:
    err = refused(write_standin(tmp_path / "a.npz", v_template=np.zeros((V - 1, 3))))
    assert "V = " in err.message


def test_non_finite_values(tmp_path: Path) -> None:
    v = standin_arrays()["v_template"].copy()
    v[5, 1] = np.nan
    err = refused(write_standin(tmp_path / "a.npz", v_template=v))
    assert "NaN" in err.message and "v_template" in err.message


def test_truncated_zip(tmp_path: Path) -> None:
    good = write_standin(tmp_path / "good.npz")
    bad = tmp_path / "SMPLX_NEUTRAL.npz"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    err = refused(bad)
    assert "truncated" in err.message


def test_damaged_member(tmp_path: Path) -> None:
    good = write_standin(tmp_path / "good.npz")
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            payload = src.read(item.filename)
            dst.writestr(item, payload[: len(payload) // 3] if item.filename == "weights.npy" else payload)
    err = refused(bad)
    assert "damaged" in err.message or "weights" in err.message


def test_not_a_model_at_all(tmp_path: Path) -> None:
    junk = tmp_path / "photo.npz"
    junk.write_bytes(b"\xff\xd8\xff\xe0 not an npz")
    assert "not an SMPL-X .npz" in refused(junk).message


def test_pkl_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    for name in ("SMPLX_NEUTRAL.pkl", "model.npz"):  # by extension, and by content (a pickle named .npz)
        path = tmp_path / name
        path.write_bytes(pickle.dumps({"v_template": Bomb(marker)}, protocol=2))
        err = refused(path)
        assert "pickle" in err.message
        assert "python -m icon_engine body convert-pkl" in err.hint and "smpl-x.is.tue.mpg.de" in err.hint
    err = refused(tmp_path)  # a folder holding only the .pkl
    assert "convert-pkl" in err.hint
    assert not marker.exists()


def standin_pkl(path: Path) -> Path:
    """The official .pkl layout: numpy arrays, a scipy sparse J_regressor, some non-array entries."""
    import scipy.sparse

    arrays = standin_arrays()
    data: dict = dict(arrays)
    data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    data["bs_style"] = "lbs"
    data["part2num"] = {"global": 0}
    path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def test_convert_pkl_then_load(tmp_path: Path) -> None:
    src = standin_pkl(tmp_path / "SMPLX_NEUTRAL.pkl")
    out = convert_pkl(src)
    assert out == tmp_path / "SMPLX_NEUTRAL.npz"
    with np.load(out, allow_pickle=False) as data:
        assert "bs_style" not in data.files and data["J_regressor"].shape == (55, V)
    assert load_body_model(out).num_vertices == V


def test_convert_pkl_refuses_a_non_model(tmp_path: Path) -> None:
    src = tmp_path / "x.pkl"
    src.write_bytes(pickle.dumps({"hello": np.zeros(3)}))
    with pytest.raises(EngineError) as info:
        convert_pkl(src, tmp_path / "x.npz")
    assert "missing" in info.value.message and not (tmp_path / "x.npz").exists()


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="icon_engine")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = args.func(args)
    return code, out.getvalue(), err.getvalue()


def test_cli_convert_pkl_warns_loudly(tmp_path: Path) -> None:
    src = standin_pkl(tmp_path / "SMPLX_MALE.pkl")
    code, out, err = run_cli(["body", "convert-pkl", str(src), "--out", str(tmp_path / "o" / "m.npz"),
                              "--i-trust-this-file"])
    assert code == 0 and out.strip() == str(tmp_path / "o" / "m.npz")
    assert "UNPICKLES" in err and "smpl-x.is.tue.mpg.de" in err
    assert load_body_model(tmp_path / "o" / "m.npz").kind == "smplx"


def test_cli_convert_pkl_needs_explicit_trust(tmp_path: Path) -> None:
    """Without --i-trust-this-file nothing is unpickled: exit 2 (usage) naming the flag."""
    marker = tmp_path / "unpickled"
    src = tmp_path / "SMPLX_NEUTRAL.pkl"
    src.write_bytes(pickle.dumps({"v_template": Bomb(marker)}, protocol=2))
    with pytest.raises(EngineError) as info:
        run_cli(["body", "convert-pkl", str(src)])
    err = info.value
    assert err.code == "usage" and err.exit_code == 2
    assert err.message == (f"convert-pkl unpickles {src}, which runs any code stored in the file; it needs your "
                           "explicit confirmation.")
    assert err.hint.endswith("run the command again with --i-trust-this-file.")
    assert not marker.exists() and not (tmp_path / "SMPLX_NEUTRAL.npz").exists()


def test_cli_requires_a_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="icon_engine")
    add_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit), redirect_stderr(io.StringIO()):
        parser.parse_args(["body"])


def test_describe_official(tmp_path: Path) -> None:
    path = write_standin(tmp_path / "SMPLX_NEUTRAL.npz")
    d = describe_body_model(path)
    assert d["active"] == "smplx" and d["ok"] and d["path"] == str(path)
    bad = write_standin(tmp_path / "bad" / "SMPLX_NEUTRAL.npz", weights=None)
    d = describe_body_model(bad)
    assert not d["ok"] and "weights" in d["problem"]
    d = describe_body_model(tmp_path / "missing")
    assert not d["ok"] and "does not exist" in d["problem"]
    assert describe_body_model(None)["active"] == "open"


def test_unknown_gender_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as info:
        load_body_model(write_standin(tmp_path / "SMPLX_NEUTRAL.npz"), gender="robot")
    assert info.value.code == "bad_option" and "neutral" in info.value.hint


def test_cli_convert_pkl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as info:
        run_cli(["body", "convert-pkl", str(tmp_path / "nope.pkl")])
    assert info.value.code == "body_model" and "does not exist" in info.value.message
