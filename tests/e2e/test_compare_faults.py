"""``swarm compare --fail``: real processes killed on time; the central mode fails and says
so, the swarm goes on from the peers it knows; nothing hangs and nothing is left running."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_compare import children_of

pytestmark = pytest.mark.e2e

SMALL = ["--size", "1M", "--peers", "2", "--no-plot", "--json", "--timeout", "60"]


def compare(tmp_path: Path, *args: str) -> dict[str, object]:
    cmd = [sys.executable, "-m", "swarm", "compare", *SMALL, *args]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert not children_of(proc.pid)
    run = json.loads(out)["runs"][0]
    assert isinstance(run, dict)
    return run


def test_a_killed_central_server_fails_its_mode_and_the_swarm_finishes(tmp_path: Path) -> None:
    start = time.monotonic()
    run = compare(tmp_path, "--upload-rate", "256K", "--fail", "central@1s")
    central, swarm = run["central"], run["swarm"]
    # At 256 KiB/s to 2, neither copy of 1 MiB is done at 1 s: none finishes, and the phase
    # ends soon after the kill, not at --timeout.
    assert central["failed"].startswith("central server killed at 1.0 s; 0 of 2 finished")
    assert central["finished"] == 0 and central["total"] is None and central["times"] == []
    assert [k["part"] for k in central["killed"]] == ["central"]
    assert run["speedup"] is None
    assert len(swarm["times"]) == 2 and swarm["total"] > 0
    assert "failed" not in swarm  # the swarm phase had no fault
    assert time.monotonic() - start < 40


def test_a_killed_tracker_leaves_the_swarm_going(tmp_path: Path) -> None:
    run = compare(tmp_path, "--upload-rate", "1M", "--fail", "tracker@0.5s")
    swarm = run["swarm"]
    assert swarm["killed"][0]["part"] == "tracker"
    assert swarm["killed"][0]["at"] == pytest.approx(0.5, abs=0.3)
    assert swarm["failed"] is None and swarm["finished"] == 2
    assert swarm["total"] > swarm["killed"][0]["at"]  # it went on after the tracker was gone
    assert "failed" not in run["central"]


def test_a_seed_killed_once_the_swarm_holds_every_piece(tmp_path: Path) -> None:
    # Both copies need 2 MiB in, at most 1 MiB/s from the seed and 64 KiB/s from each leecher:
    # not both done by 1.6 s, when the seed has sent about 1.5 times the file, each piece first
    # to whoever lacks it (rarest first). So the leechers hold every piece between them and
    # finish from each other; were a piece missing, the mode must say it failed, and why.
    args = ["--upload-rate", "1M", "--peer-upload-rate", "64K", "--fail", "seed@1.6s"]
    swarm = compare(tmp_path, *args)["swarm"]
    (kill,) = swarm["killed"]
    assert kill["part"] == "seed" and kill["at"] == pytest.approx(1.6, abs=0.3)
    if swarm["failed"] is None:
        assert swarm["finished"] == 2 and len(swarm["times"]) == 2
        assert max(swarm["times"]) > kill["at"]  # the last finished without the seed
    else:
        assert swarm["failed"].startswith(f"seed killed at {kill['at']:.1f} s; ")
        assert swarm["finished"] < 2 and swarm["total"] is None


@pytest.mark.parametrize(
    "value", ["dht@1s", "central", "central@-1s", "central@soon", "seed@1s,seed@2s"]
)
def test_bad_fail_values_are_a_one_line_usage_error(tmp_path: Path, value: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "swarm", "compare", "--size", "1M", "--fail", value],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error: --fail") and out.stderr.count("\n") == 1
    assert out.stdout == "" and list(tmp_path.iterdir()) == []
