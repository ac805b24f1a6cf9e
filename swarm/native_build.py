"""``swarm build-native``: compile :data:`swarm.native.COMPILED` with mypyc (see
:mod:`swarm.native` for how the build is used, and only while it matches the sources).

The sources are copied to a temporary folder and compiled there by ``python -m mypyc`` (so no
extension file ever lands beside a ``.py`` file, where it would shadow later edits); the
extension files, mypyc's shared library and the stamp then replace ``swarm/_native`` whole.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass

from swarm.errors import SwarmError
from swarm.native import (
    COMPILED,
    NATIVE_DIR,
    PACKAGE_DIR,
    STAMP,
    Stamp,
    extension_suffix,
    source_digest,
)


class NativeBuildError(SwarmError):
    """mypyc or the C compiler failed, or the build could not be put in place."""

    exit_code = 1


@dataclass(frozen=True)
class BuildResult:
    modules: tuple[str, ...]
    seconds: float
    native_dir: str


def toolchain_problem() -> str | None:
    """Why mypyc cannot build here (no mypyc, no C compiler, no Python headers), or None."""
    if importlib.util.find_spec("mypyc") is None:
        return "mypyc is not installed (it comes with mypy: pip install -e '.[native]')"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"no Python headers ({include}/Python.h; Debian: python3-dev)"
    return None


def _tail(text: str) -> str:
    """The first error line of mypy or the compiler, else the last line of the output."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[0][:300]


def _compile(src_root: str, timeout: float) -> None:
    paths = [name.replace(".", "/") + ".py" for name in COMPILED]
    cmd = [sys.executable, "-m", "mypyc", "--ignore-missing-imports", *paths]
    try:
        proc = subprocess.run(cmd, cwd=src_root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise NativeBuildError(f"mypyc took more than {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise NativeBuildError(f"mypyc failed: {_tail(proc.stdout + proc.stderr)}")


def _stage(src_root: str, staging: str, digest: str) -> None:
    """Copy the extension files and mypyc's shared library into *staging*, with the stamp."""
    suffix = extension_suffix()
    shared = [f for f in os.listdir(src_root) if f.endswith(suffix) and "__mypyc" in f]
    if len(shared) != 1:
        raise NativeBuildError(f"mypyc made {len(shared)} shared libraries, not one")
    shutil.copy2(os.path.join(src_root, shared[0]), os.path.join(staging, shared[0]))
    modules = {}
    for name in COMPILED:
        rel = name.replace(".", "/") + suffix
        if not os.path.exists(os.path.join(src_root, rel)):
            raise NativeBuildError(f"mypyc made no extension file for {name}")
        os.makedirs(os.path.dirname(os.path.join(staging, rel)), exist_ok=True)
        shutil.copy2(os.path.join(src_root, rel), os.path.join(staging, rel))
        modules[name] = rel
    stamp = Stamp(digest, suffix, shared[0], modules)
    with open(os.path.join(staging, STAMP), "w", encoding="utf-8") as fh:
        fh.write(stamp.format())


def _replace(staging: str, native_dir: str) -> None:
    """Put *staging* where *native_dir* is, and remove the build it replaces."""
    old = None
    if os.path.exists(native_dir):
        old = tempfile.mkdtemp(prefix="_native.old.", dir=os.path.dirname(native_dir))
        os.rename(native_dir, os.path.join(old, "build"))
    os.rename(staging, native_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build(
    package_dir: str = PACKAGE_DIR, native_dir: str = NATIVE_DIR, *, timeout: float = 600.0
) -> BuildResult:
    """Compile :data:`COMPILED` from *package_dir* into *native_dir*; NativeBuildError if
    mypyc fails (check :func:`toolchain_problem` first for a missing compiler)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="swarm-native-") as tmp:
        src = os.path.join(tmp, "swarm")
        ignore = shutil.ignore_patterns("_native*", "__pycache__", "*.so")
        shutil.copytree(package_dir, src, ignore=ignore)
        digest = source_digest(src)  # what is compiled: a later edit makes the build stale
        _compile(tmp, timeout)
        try:
            staging = tempfile.mkdtemp(prefix="_native.new.", dir=os.path.dirname(native_dir))
            try:
                _stage(tmp, staging, digest)
                _replace(staging, native_dir)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        except OSError as exc:
            raise NativeBuildError(f"cannot put the build in {native_dir}: {exc}") from exc
    return BuildResult(COMPILED, time.monotonic() - start, native_dir)


def clean(native_dir: str = NATIVE_DIR) -> bool:
    """Remove the compiled core; True if there was one."""
    if not os.path.exists(native_dir):
        return False
    try:
        shutil.rmtree(native_dir)
    except OSError as exc:
        raise NativeBuildError(f"cannot remove {native_dir}: {exc}") from exc
    return True
