"""Mutation run of the bundle reader: damaged bundles must end in a ``BundleError``, never in another exception.

Each read starts from a fresh copy of a real bundle and changes one thing: a value of ``bundle.json`` (any key at
any depth, the first four items of lists) replaced by an odd value (None, NaN, 1e308, 10³⁰, strings, lists, a
path) or deleted, or one file truncated, emptied or bit-flipped. ``icon_engine.bundle.read_bundle`` (what
``validate``, the Python API and the add-on use) must accept the bundle or refuse it with a ``BundleError``.
With ``--addon`` (in an environment with ``bpy``), a bundle the reader accepts is also imported by the add-on
(``icon_blender.blender.importer.import_bundle`` into an empty scene), which must succeed or raise a
``BundleError``. Prints each kind of other exception (type, message, where it was raised) with one mutation that
caused it; exits 1 when there is any.

Usage: ``python bench/bundle_mutations.py BUNDLE [BUNDLE ...] --reads 1500 --seed 0`` (about 2–3 reads per second
on a 2-core machine; the copies go to a temporary folder).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lib.mutations import collect, damage, report  # noqa: E402

#: Values a mutated JSON entry takes.
ODD_VALUES: tuple[Any, ...] = (None, -1, 0, 1e308, float("nan"), "x", "", [], {}, [1, 2], True, -1e9, 10**30,
                               "../../etc/passwd", [[0.0] * 3] * 3, "nan")


def json_paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every key path of a JSON value (dict keys, the first four list items), parents before children."""
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node[:4]))
    else:
        return
    for key, value in items:
        yield (*prefix, key)
        yield from json_paths(value, (*prefix, key))


def mutate(bundle: Path, meta: dict, paths: list[tuple], rng: random.Random) -> str:
    """Change one thing in the bundle folder ``bundle`` (a copy; ``meta`` its original ``bundle.json``); returns
    what was done."""
    if rng.random() < 0.75:
        changed = copy.deepcopy(meta)
        path = rng.choice(paths)
        node = changed
        for key in path[:-1]:
            node = node[key]
        if rng.random() < 0.2:
            del node[path[-1]]
            done = f"delete {path}"
        else:
            value = rng.choice(ODD_VALUES)
            node[path[-1]] = value
            done = f"set {path} = {value!r}"
        (bundle / "bundle.json").write_text(json.dumps(changed))
        return done
    target = rng.choice(sorted(p for p in bundle.iterdir() if p.name != "bundle.json"))
    data, done = damage(target.read_bytes(), rng)
    target.write_bytes(data)
    return f"{target.name}: {done}"


def run(bundles: list[Path], reads: int, seed: int, addon: bool = False) -> dict[str, str]:
    """``reads`` mutated reads spread over ``bundles`` (with ``addon``, each accepted bundle imported by the add-on
    too); {exception kind: a mutation that raised it}."""
    from icon_engine.bundle import read_bundle
    from icon_engine.bundle.reader import BundleError

    def import_with_addon(bundle: Any) -> None:
        import bpy

        from icon_blender.blender.importer import import_bundle

        bpy.ops.wm.read_factory_settings(use_empty=True)
        import_bundle(bundle, bpy.context.scene)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "bundle"
        count = iter(range(reads))

        def one_read(rng: random.Random) -> tuple[str, Callable[[], object]]:
            source = bundles[next(count) % len(bundles)]
            meta = json.loads((source / "bundle.json").read_text())
            if work.exists():
                shutil.rmtree(work)
            shutil.copytree(source, work)
            done = mutate(work, meta, list(json_paths(meta)), rng)

            def read() -> None:
                bundle = read_bundle(work)
                if addon:
                    import_with_addon(bundle)

            return f"{source.name}: {done}", read

        return collect(reads, seed, one_read, BundleError)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", type=Path, nargs="+", help="bundle folders (left unchanged: copies are mutated)")
    ap.add_argument("--reads", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--addon", action="store_true", help="also import each accepted bundle with the add-on (bpy)")
    args = ap.parse_args(argv)
    sys.exit(report(run(args.bundles, args.reads, args.seed, args.addon), args.reads, "BundleError"))


if __name__ == "__main__":
    main()
