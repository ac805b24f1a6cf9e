"""``swarm compare --churn``, end to end at a tiny scale: the swarm phase runs without and with
churn in one run; leechers leave, come back and resume; the delay is reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

# The hybrid mode is left out: churn is about the swarm, and it would add a phase to each run.
COMPARE = [sys.executable, "-m", "swarm", "compare", "--modes", "central,swarm"]


def test_churn_runs_the_swarm_twice_and_leavers_resume(tmp_path: Path) -> None:
    # Seed 22 at 30/min: leecher 2 leaves at 0.68 s and leecher 0 at 0.95 s, each for 1 s,
    # while the copies take 2 s (D_p2p); the central phase is cut at 0.5 s to save time.
    cmd = [*COMPARE, "--peers", "3", "--size", "512K", "--upload-rate", "256K"]
    cmd += ["--churn", "30", "--churn-seed", "22", "--churn-away", "1", "--central-cutoff", "0.5"]
    cmd += ["--churn-seed-leaves", "--json", "--no-plot"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["churn"] == {
        "rate_per_minute": 30.0,
        "away": 1.0,
        "seed": 22,
        "seed_leaves": True,
    }
    (run,) = out["runs"]
    plain, churned = run["swarm"], run["swarm_churn"]
    assert len(plain["times"]) == len(churned["times"]) == 3
    left = {d["who"]: d for d in churned["departures"]}
    assert {0, 2} <= set(left), churned["departures"]
    for who, d in left.items():
        # Timed from the first 'go', the time away included; and back with what it had.
        assert churned["times"][who] >= d["back"]
        assert d["had_at_last_return"] is not None
    assert any(d["had_at_last_return"] > 0 for d in left.values()), "nobody resumed"
    delay = run["churn_delay"]
    assert delay["total"] == pytest.approx(churned["total"] - plain["total"], abs=0.002)
    assert delay["total"] > 0  # a leecher away for 1 s of a 2 s download costs time
    # The seed left once the first copy was done, and the others finished from the peers.
    assert churned["seed_left"] == pytest.approx(min(churned["times"]), abs=0.5)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--churn", "0"], "--churn takes"),
        (["--churn", "often"], "--churn takes"),
        (["--churn-seed", "3"], "are for --churn"),
        (["--churn-seed-leaves"], "are for --churn"),
    ],
)
def test_bad_churn_options_are_usage_errors(tmp_path: Path, args: list[str], words: str) -> None:
    proc = subprocess.run(
        [*COMPARE, "--size", "64K", *args], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 2
    assert words in proc.stderr
