"""``swarm compare`` end to end: real processes, table, JSON and chart; nothing left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarm.compare import bounds

pytestmark = pytest.mark.e2e


def children_of(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == pid:
                out.add(int(entry))
    return out


def test_bounds_formula() -> None:
    d_cs, d_p2p = bounds(4 * 2**20, 8, 2**20, 2**20)
    assert d_cs == pytest.approx(32.0)
    assert d_p2p == pytest.approx(4.0)
    d_cs, d_p2p = bounds(10, 4, 1, 0.1, d_min=0.5)
    assert d_cs == pytest.approx(40.0) and d_p2p == pytest.approx(40 / 1.4)


@pytest.mark.parametrize(
    ("d_min", "line"),
    [
        (None, "d_min: no download cap"),
        (2 * 2**20, "d_min: each downloader downloads at most 2.0 MiB/s"),
    ],
)
def test_the_table_says_what_download_cap_it_ran_with(
    d_min: int | None, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from swarm.cli.compare import _table
    from swarm.compare import ModeResult, Run

    run = Run(2, ModeResult([1.0, 2.0]), ModeResult([0.5, 0.6]), 2.0, 0.5)
    info = {"file": "a.bin", "size": 2**20, "upload_rate": 2**20, "peer_upload_rate": 2**20}
    _table([run], info | {"download_rate": d_min}, None)
    assert line in capsys.readouterr().out


def test_compare_json_table_and_chart(tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    cmd = [
        sys.executable,
        "-m",
        "swarm",
        "compare",
        *("--modes", "central,swarm"),  # hybrid has tests of its own: test_compare_hybrid
        "--peers",
        "1,2",
        "--size",
        "512K",
        "--upload-rate",
        "2M",
        "--json",
        "--plot",
        str(chart),
        "--utp",  # the swarm's peers dial uTP first (the default runs are TCP)
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    obj = json.loads(out)
    assert obj["file_size"] == 512 * 1024 and obj["upload_rate"] == 2 * 2**20
    assert obj["file"] == "synthetic-524288.bin"  # --size names its file (it was null)
    assert obj["download_rate"] is None and obj["transport"] == "utp"
    assert [r["peers"] for r in obj["runs"]] == [1, 2]
    for r in obj["runs"]:
        assert len(r["central"]["times"]) == r["peers"] == len(r["swarm"]["times"])
        assert r["central"]["total"] >= r["bounds"]["central"] * 0.9
        assert r["swarm"]["total"] > 0 and r["speedup"] > 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Traceback" not in err
    assert not children_of(proc.pid)


def test_compare_table(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarm",
            "compare",
            *("--modes", "central,swarm"),
            "--peers",
            "1,2",
            "--size",
            "256K",
            "--upload-rate",
            "4M",
            "--download-rate",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "central" in out.stdout and "swarm" in out.stdout and "speedup" in out.stdout
    # The chart is drawn by default, where the output says; the table says what F, u_s, u
    # and d_min were in one line.
    assert "chart: swarm-compare.png" in out.stdout.splitlines()
    assert (tmp_path / "swarm-compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "F = 256.0 KiB (the file), u_s = 4.0 MiB/s" in out.stdout
    assert "d_min = no cap" in out.stdout
    assert "D_p2p" in out.stdout
    # --download-rate 0 means no cap, and the output says so
    assert "d_min: no download cap" in out.stdout
    # one downloader is one, not "1 downloaders", and its copy is not "all 1 copies"
    assert "N=1: 1 downloader from the central server" in out.stderr
    assert "N=1: 1 downloader in the swarm" in out.stderr
    assert "the copy verified in" in out.stderr and "all 1 copies" not in out.stderr
    assert "N=2: 2 downloaders in the swarm" in out.stderr and "all 2 copies" in out.stderr
    assert "262144 bytes" in out.stderr


def test_compare_rejects_bad_arguments() -> None:
    for args in (["--peers", "0"], ["--peers", "x"], ["--upload-rate", "0"], ["/nonexistent/file"]):
        r = subprocess.run(
            [sys.executable, "-m", "swarm", "compare", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2, args
        assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr


@pytest.mark.parametrize("peers", ["1,,2", "1,2,", ",2", ""])
def test_compare_refuses_an_empty_item_in_peers(peers: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "compare", "--size", "64K", "--peers", peers],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: --peers") and len(r.stderr.splitlines()) == 1, r.stderr
    assert repr(peers) in r.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--timeout", "0"], ["--timeout"]),
        (["--timeout", "-1"], ["--timeout"]),
        (["--timeout", "nan"], ["--timeout"]),
        (["any-file.wav"], ["PATH or --size"]),
    ],
)
def test_compare_refuses_before_anything_runs(args: list[str], words: list[str]) -> None:
    # a timeout of 0, below 0 or nan ran everything, then failed as "unexpected failure:
    # TimeoutError" (exit 1); PATH beside --size was silently ignored
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "compare", "--size", "64K", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and len(r.stderr.splitlines()) == 1, r.stderr
    assert all(w in r.stderr for w in words), r.stderr


def test_a_phase_that_runs_out_of_time_fails_and_the_comparison_goes_on(tmp_path: Path) -> None:
    # 1 MiB at 64 KiB/s takes 16 s in every mode: with a 3 s --timeout the central phase stops
    # at 3 s with its end extrapolated (its bound is past the timeout), and the swarm and
    # hybrid phases fail, each in turn (that used to end the whole run at the first phase with
    # "error: downloader 0: no done within 3 s", nothing measured).
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "compare", "--size", "1M", "--upload-rate", "64K"]
        + ["--peers", "1", "--timeout", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: N=1 swarm: 0 of 1 finished (no end within 3 s, --timeout)"], r.stderr
    assert "Traceback" not in r.stderr and "unexpected" not in r.stderr
    run = json.loads(r.stdout)["runs"][0]
    cut = run["central"]["cutoff"]
    assert 2.9 <= cut["stopped_at"] < 4 and cut["extrapolated_total"] > 3
    for mode in ("swarm", "hybrid"):
        assert run[mode]["total"] is None, run
        assert run[mode]["failed"] == "0 of 1 finished (no end within 3 s, --timeout)", run


def test_compare_help_says_what_download_rate_0_means() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "compare", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0
    assert "0 or none (the default) means no cap" in " ".join(r.stdout.split())


def test_compare_plot_into_a_missing_folder_is_bad_input_before_anything_runs(
    tmp_path: Path,
) -> None:
    chart = tmp_path / "missing" / "chart.png"
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "compare", "--size", "64K", "--plot", str(chart)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and len(r.stderr.splitlines()) == 1
    assert str(chart.parent) in r.stderr


def test_a_repeated_n_is_measured_each_time_and_its_spread_shown(tmp_path: Path) -> None:
    # --peers 2,2 crashed after the first N: FileExistsError on .../central-2/0.
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "compare", "--modes", "central,swarm", "--size", "64K"]
        + ["--peers", "1,1,1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "unexpected" not in r.stderr
    spread = [line for line in r.stdout.splitlines() if line.startswith("N=1, 3 runs: total")]
    assert len(spread) == 1 and "central" in spread[0] and "swarm" in spread[0], r.stdout


def test_a_size_larger_than_the_free_space_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "compare", "--size", "900T", "--peers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: --size") and len(r.stderr.splitlines()) == 1, r.stderr
    assert "free" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_sigterm_while_the_size_file_is_built_removes_it(tmp_path: Path) -> None:
    # SIGINT cleaned up, SIGTERM left the half-built file (gigabytes) in the temporary folder.
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarm", "compare", "--size", "1G", "--peers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("swarm-compare-src-*/synthetic-*")):
            assert proc.poll() is None and time.monotonic() < deadline, "no file being built"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(tmp_path.iterdir()) == [], list(tmp_path.rglob("*"))
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_the_chart_takes_repeated_n_and_a_wide_range_of_n(tmp_path: Path) -> None:
    from swarm.compare import ModeResult, Run, plot
    from swarm.compare.chart import by_n

    runs = [
        Run(n, ModeResult([float(n)] * n), ModeResult([1.0 + k] * n), float(n), 1.0)
        for k, n in enumerate([1, 1, 8, 64])
    ]
    groups = by_n(runs)
    assert list(groups) == [1, 8, 64] and len(groups[1]) == 2
    out = tmp_path / "c.png"
    plot(runs, out, 2**20, 2**20)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timing
@pytest.mark.parametrize("lab", ["none", "netns"])
def test_the_default_compare_lands_near_its_bounds_with_either_kind_of_cap(
    tmp_path: Path, lab: str
) -> None:
    # The bundled sample at N = 2 with 1 MiB/s caps: swarm's own token buckets (lab none), or
    # every process in a network namespace, its links capped by the kernel (tc tbf), swarm's
    # own caps off (lab netns). Both modes within 1.3x of their bounds either way.
    if lab == "netns":
        from swarm.compare.netlab import lab_problem

        problem = lab_problem()
        if problem:
            if os.environ.get("CI") == "true":
                pytest.fail(f"{problem}, and CI must run the network lab")
            pytest.skip(problem)
    # --timeout: a phase that hangs ends inside compare, which stops its children (a
    # compare killed by this test's own timeout would leave them running).
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "compare", "--peers", "2", "--json", "--no-plot"]
        + ["--lab", lab, "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["caps"] == ("swarm" if lab == "none" else "kernel (netns lab, tc tbf)")
    assert obj["transport"] == "tcp"  # like the central mode's HTTP
    (run,) = obj["runs"]
    for mode in ("central", "swarm"):
        assert run[mode]["total"] <= 1.3 * run["bounds"][mode], (mode, run)
    # The hybrid mode is in the default run, beside its bound (the swarm's: the same u_s).
    # 1.10-1.14x at N = 2 without the lab; held to 2x here (the 1.3x for hybrid is a
    # benchmark figure, bench/README), which a web seed asked for the same pieces twice fails.
    assert run["bounds"]["hybrid"] == run["bounds"]["swarm"]
    assert "hybrid_skipped" not in run and len(run["hybrid"]["times"]) == 2, run
    assert run["hybrid"]["total"] <= 2.0 * run["bounds"]["hybrid"], run["hybrid"]
    if lab == "netns":
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "sl" not in names  # the lab's namespaces are gone
