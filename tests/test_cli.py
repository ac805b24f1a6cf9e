"""The CLI's conventions: exit codes, one-line errors, no tracebacks, --help everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.cli import main

COMMANDS = ["create", "info", "tracker", "seed", "fetch", "serve-central", "compare"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swarm", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_create_then_info_json(tmp_path: Path) -> None:
    src = tmp_path / "song.bin"
    src.write_bytes(b"z" * 100_000)
    out = tmp_path / "song.torrent"
    r = run(
        "create",
        str(src),
        "-o",
        str(out),
        "-t",
        "http://a/announce",
        "-t",
        "udp://b:1,udp://c:2",
        "--piece-length",
        "32K",
        "--webseed",
        "http://w/song.bin",
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert (
        lines[0].endswith(str(out))
        and "info-hash:" in lines[1]
        and lines[2].split()[1].startswith("magnet:?xt=urn:btih:")
    )
    r = run("info", "--json", str(out))
    obj = json.loads(r.stdout)
    assert obj["name"] == "song.bin" and obj["length"] == 100_000 and obj["piece_length"] == 32768
    assert obj["pieces"] == 4 and obj["files"] == [{"path": "song.bin", "length": 100_000}]
    assert obj["announce"] == ["http://a/announce", "udp://b:1", "udp://c:2"]
    assert obj["private"] is False and obj["url_list"] == ["http://w/song.bin"]
    assert len(obj["info_hash"]) == 40 and obj["info_hash"] == obj["info_hash"].lower()
    r = run("info", str(out))
    assert r.returncode == 0 and "song.bin" in r.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["info", "/nonexistent.torrent"],
        ["create", "/nonexistent"],
        ["create", ".", "--piece-length", "3X"],
        ["info", "--bogus"],
        ["fetch", "--max-download-rate", "fast", "x.torrent"],
        ["seed", "/nonexistent"],
        ["tracker", "--port", "99999"],
    ],
)
def test_bad_input_is_exit_2_with_one_line(args: list[str]) -> None:
    r = run(*args)
    assert r.returncode == 2, (args, r.stderr)
    assert r.stderr.startswith("error: ")
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_malformed_torrent_and_folder_as_torrent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.torrent"
    bad.write_bytes(b"d4:infod4:name")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bencoding" in err
    assert main(["info", str(tmp_path)]) == 2
    assert "folder" in capsys.readouterr().err


def test_create_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"1" * 10)
    out = tmp_path / "f.torrent"
    assert main(["create", str(src), "-o", str(out)]) == 0
    assert main(["create", str(src), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["create", str(src), "-o", str(out), "--force", "-q"]) == 0


@pytest.mark.parametrize("command", COMMANDS)
def test_help_everywhere(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert "Usage:" in capsys.readouterr().out


def test_port_in_use_is_a_runtime_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("tracker", "--port", str(port), "--no-udp")
        assert r.returncode == 1 and "already in use" in r.stderr and "Traceback" not in r.stderr
        r = run("serve-central", str(tmp_path), "--port", str(port))
        assert r.returncode == 1 and "already in use" in r.stderr
