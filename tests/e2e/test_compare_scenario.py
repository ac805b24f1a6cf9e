"""``swarm compare --scenario texts`` end to end, shrunk by --peers and --size so that it runs
in seconds: the claim beside the measurement, the central phase cut off and extrapolated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

COMPARE = [sys.executable, "-m", "swarm", "compare"]


@pytest.mark.timing
def test_the_texts_scenario_at_a_tiny_scale(tmp_path: Path) -> None:
    cmd = [*COMPARE, "--scenario", "texts", "--peers", "3", "--size", "200000"]
    cmd += ["--central-cutoff", "1", "--json", "--no-plot"]  # the chart: test_compare_churn
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["upload_rate"] == out["peer_upload_rate"] == 100_000  # 10 MB/s / 100
    assert out["file_size"] == 200_000
    sc = out["scenario"]
    header = "\n".join(sc["header"])
    assert "N = 3, NOT the texts' 100" in header and "NOT the preset's 10 MB" in header
    assert sc["claim"].startswith("100 peers share a 1 GB file at 10 MB/s each")
    assert sc["n_times_u"] == 300_000 and sc["peak_upload_rate"] > 0
    lines = "\n".join(sc["lines"])
    assert "EXTRAPOLATED" in lines and "of N x u" in lines
    (run,) = out["runs"]
    central = run["central"]
    assert central["total"] is None  # not measured: cut off
    cut = central["cutoff"]
    assert cut["stopped_at"] == pytest.approx(1.0, abs=0.5)
    # What came is the server's rate, and its end follows from it.
    assert 50_000 < cut["measured_rate"] < 150_000
    assert cut["extrapolated_total"] == pytest.approx(600_000 / cut["measured_rate"], rel=0.01)
    swarm = run["swarm"]
    assert len(swarm["times"]) == 3 and swarm["total"] >= 0.9 * run["bounds"]["swarm"]
    delivered = swarm["delivered"]
    assert delivered[-1][1] >= 3 * 200_000  # every byte of the 3 copies landed


def test_the_scenario_sets_the_rates_itself(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*COMPARE, "--scenario", "texts", "--upload-rate", "1M"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "sets the file and the rates" in proc.stderr
