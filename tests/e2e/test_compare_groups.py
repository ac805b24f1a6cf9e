"""Several downloaders per process, end to end: ``swarm fetch-group`` alone and under
``swarm compare --peers-per-process``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.status import Event, decode

pytestmark = pytest.mark.e2e


def test_compare_times_and_checks_every_downloader_of_a_group(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "swarm", "compare", "--peers", "6", "--peers-per-process", "3"]
    cmd += ["--modes", "central,swarm"]  # hybrid in groups: test_compare_hybrid
    cmd += ["--size", "256K", "--upload-rate", "2M", "--json", "--no-plot"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = json.loads(proc.stdout)["runs"]
    assert run["peers"] == 6 and run["peers_per_process"] == 3
    modes = ("central", "swarm", "hybrid") if "hybrid" in run else ("central", "swarm")
    for mode in modes:
        res = run[mode]
        assert res["processes"] == 2  # 6 downloaders, 3 to a process
        assert len(res["times"]) == 6 and all(t > 0 for t in res["times"])
        # No downloader beats the bound: each is timed on its own, to its own copy.
        assert res["total"] >= 0.9 * run["bounds"][mode]
        assert res["cpu_seconds"] > 0 and res["peak_rss"] > 0


def test_fetch_group_runs_k_downloaders_each_done_with_its_index(tmp_path: Path) -> None:
    """Against a central server: folders BASE/3 and BASE/4, one done line each."""
    data = os.urandom(100_000)
    (tmp_path / "f.bin").write_bytes(data)
    r, w = os.pipe()
    server = subprocess.Popen(
        [sys.executable, "-m", "swarm", "-q", "serve-central", str(tmp_path / "f.bin")]
        + ["--host", "127.0.0.1", "--port", "0", "--status-fd", str(w)],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
    )
    os.close(w)
    base = tmp_path / "out"
    try:
        with os.fdopen(r, "rb") as status:
            url = decode(status.readline()).urls[0]
        for i in (3, 4):
            (base / str(i)).mkdir(parents=True)
        r2, w2 = os.pipe()
        group = subprocess.Popen(
            [sys.executable, "-m", "swarm", "-q", "fetch-group", url, "-o", str(base)]
            + ["--first", "3", "--count", "2", "--status-fd", str(w2)],
            pass_fds=(w2,),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        os.close(w2)
        with os.fdopen(r2, "rb") as status:
            assert decode(status.readline()).event is Event.READY
            assert not any((base / str(i) / "f.bin").exists() for i in (3, 4))  # not before go
            assert group.stdin is not None
            group.stdin.write(b"go\n")
            group.stdin.close()
            lines = [decode(status.readline()) for _ in range(2)]
            group.terminate()  # the group stays until stopped, as compare stops it
            assert group.wait(timeout=60) == 0  # every download was done: a normal end
        assert sorted((s.event, s.index) for s in lines) == [(Event.DONE, 3), (Event.DONE, 4)]
        assert all(s.downloaded == len(data) for s in lines)
        for i in (3, 4):
            assert (base / str(i) / "f.bin").read_bytes() == data
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_fetch_group_refuses_a_missing_folder(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "swarm", "fetch-group", "http://127.0.0.1:1/f", "-o", str(tmp_path)]
        + ["--count", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no such folder" in proc.stderr
