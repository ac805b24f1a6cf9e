"""The compiled core (swarm.native, swarm build-native): used only while it matches the
sources, pure Python otherwise, and the same behaviour either way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from swarm import native
from swarm.native_build import toolchain_problem

ROOT = Path(__file__).resolve().parent.parent


def _copy_package(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("_native*", "__pycache__", "*.so")
    shutil.copytree(ROOT / "swarm", dest / "swarm", ignore=ignore)
    return dest / "swarm"


def test_the_digest_follows_every_source_and_nothing_else(tmp_path: Path) -> None:
    pkg = _copy_package(tmp_path)
    first = native.source_digest(str(pkg))
    (pkg / "_native").mkdir()
    (pkg / "_native" / native.STAMP).write_text("")
    (pkg / "__pycache__").mkdir(exist_ok=True)
    (pkg / "__pycache__" / "x.py").write_text("ignored")
    assert native.source_digest(str(pkg)) == first
    parser = pkg / "wire" / "parser.py"
    parser.write_text(parser.read_text() + "\n# an edit\n")
    assert native.source_digest(str(pkg)) != first
    parser.write_text(parser.read_text().removesuffix("\n# an edit\n"))
    assert native.source_digest(str(pkg)) == first
    (pkg / "new_module.py").write_text("")  # a new module counts too
    assert native.source_digest(str(pkg)) != first


def _stamp(native_dir: Path, digest: str = "0" * 64, suffix: str = "") -> None:
    suffix = suffix or native.extension_suffix()
    native_dir.mkdir(exist_ok=True)
    modules = {"swarm.picker": "swarm/picker" + suffix}
    stamp = native.Stamp(digest, suffix, "abc__mypyc" + suffix, modules)
    (native_dir / native.STAMP).write_text(stamp.format())


def test_only_a_build_of_these_very_sources_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWARM_NATIVE", raising=False)
    pkg = _copy_package(tmp_path)
    digest = native.source_digest(str(pkg))
    nat = tmp_path / "native"
    said, finder = native.verdict(str(nat), str(pkg))
    assert finder is None and "no compiled core built" in said
    _stamp(nat)
    said, finder = native.verdict(str(nat), str(pkg))
    assert finder is None and "sources changed" in said
    _stamp(nat, digest=digest, suffix=".cpython-36m.so")
    said, finder = native.verdict(str(nat), str(pkg))
    assert finder is None and "another Python" in said
    for bad in ("digest 00\nsuffix .so\n", "{not a stamp}", "", "module swarm.picker\n"):
        (nat / native.STAMP).write_text(bad)
        said, finder = native.verdict(str(nat), str(pkg))
        assert finder is None and "malformed" in said
    _stamp(nat, digest=digest)
    said, finder = native.verdict(str(nat), str(pkg))
    assert finder is not None and said.startswith("compiled")
    monkeypatch.setenv("SWARM_NATIVE", "0")
    said, finder = native.verdict(str(nat), str(pkg))
    assert finder is None and "SWARM_NATIVE=0" in said


def test_a_build_that_does_not_load_leaves_every_module_pure(tmp_path: Path) -> None:
    """The shared library is missing: the finder gives up, and the import finds the .py."""
    _stamp(tmp_path / "native")
    stamp = native.read_stamp(str(tmp_path / "native"))
    assert stamp is not None and native.Stamp.parse(stamp.format()) == stamp
    finder = native.finder_for(stamp, str(tmp_path / "nowhere"))
    assert finder.find_spec("swarm.picker") is None
    assert finder.failed and "does not load" in native.state
    assert finder.find_spec("swarm.session") is None


def _env(cwd: Path, **env: str) -> dict[str, str]:
    """The environment of a child that imports the package at *cwd* (SWARM_NATIVE: *env*'s)."""
    base = {k: v for k, v in os.environ.items() if k != "SWARM_NATIVE"}
    return {**base, "PYTHONPATH": str(cwd), **env}


def _run(cwd: Path, code: str, **env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=_env(cwd, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


WHICH = (
    "import importlib\n"
    "from swarm import native\n"
    "for name in native.COMPILED: importlib.import_module(name)\n"
    "print(native.state, '|', ' '.join(native.in_use()))\n"
)


def _which(cwd: Path, **env: str) -> tuple[str, list[str]]:
    """What a child Python importing the package at *cwd* runs: the state and compiled modules."""
    state, _, loaded = _run(cwd, WHICH, **env).partition("|")
    return state.strip(), loaded.split()


PARSE = (
    "from swarm.wire.parser import Parser\n"
    "from swarm.wire.messages import Have, encode\n"
    "p = Parser(expect_handshake=False)\n"
    "print([repr(m) for m in p.feed(encode(Have(7)) + encode(Have(9))[:3])],"
    " [repr(m) for m in p.feed(encode(Have(9))[3:])])\n"
)


@pytest.mark.skipif(toolchain_problem() is not None, reason=str(toolchain_problem()))
def test_build_native_compiles_the_hot_path_and_steps_aside_after_an_edit(
    tmp_path: Path,
) -> None:
    pkg = _copy_package(tmp_path)
    pure_parse = _run(tmp_path, PARSE, SWARM_NATIVE="0")
    build = subprocess.run(
        [sys.executable, "-m", "swarm", "build-native"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert (pkg / "_native" / native.STAMP).exists()
    assert not list(pkg.glob("*.so")), "nothing is built beside the sources"
    state, loaded = _which(tmp_path)
    assert state.startswith("compiled") and loaded == sorted(native.COMPILED)
    assert _run(tmp_path, PARSE) == pure_parse  # the same behaviour, compiled
    assert _which(tmp_path, SWARM_NATIVE="0") == ("pure Python (SWARM_NATIVE=0)", [])
    choker = pkg / "choker.py"
    choker.write_text(choker.read_text() + "\n# an edit\n")
    state, loaded = _which(tmp_path)
    assert "sources changed" in state and loaded == []
    choker.write_text(choker.read_text().removesuffix("\n# an edit\n"))
    assert _which(tmp_path)[0].startswith("compiled")
    shared = next((pkg / "_native").glob("*__mypyc*"))
    shared.write_bytes(b"not a library")  # a broken build: the imports still work, pure
    state, loaded = _which(tmp_path)
    assert "does not load" in state and loaded == []
    status = _run(tmp_path, "from swarm.cli import main; main(['build-native', '--status'])")
    assert status.startswith("swarm runs pure Python (the compiled core does not load")
    status = _run(tmp_path, "from swarm.cli import main; main(['build-native', '--clean'])")
    assert status == "removed the compiled core" and not (pkg / "_native").exists()
