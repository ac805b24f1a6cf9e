"""Interop fixtures: real BitTorrent clients from Debian's packages.

Where a client is missing the tests that need it are skipped with the reason, except under CI
(CI=true), where a missing client fails the run: CI installs them all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("lt_helper.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is not installed, and CI must run the interop tests")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def libtorrent() -> list[str]:
    """The command prefix that runs the libtorrent helper under the system Python."""
    ok = (
        os.path.exists(SYSTEM_PYTHON)
        and subprocess.run(
            [SYSTEM_PYTHON, "-c", "import libtorrent"], capture_output=True, timeout=60
        ).returncode
        == 0
    )
    if not ok:
        _missing("python3-libtorrent (for /usr/bin/python3)")
    return [SYSTEM_PYTHON, str(HELPER)]


def _program(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} (Debian package {package})")
    return path  # type: ignore[return-value]


@pytest.fixture(scope="session")
def aria2c() -> str:
    return _program("aria2c", "aria2")


@pytest.fixture(scope="session")
def transmission_cli() -> str:
    return _program("transmission-cli", "transmission-cli")


@pytest.fixture(scope="session")
def transmission_create() -> str:
    return _program("transmission-create", "transmission-cli")


@pytest.fixture(scope="session")
def qbittorrent_nox() -> str:
    return _program("qbittorrent-nox", "qbittorrent-nox")
