"""``swarm compare --modes`` and ``--central nginx``, the parts that start nothing: the modes
parsed, the hybrid row in the table and the JSON beside its bound, the chart's third line,
nginx's configuration and its per-request cap (issue 18), and the check of the copies."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import types
from pathlib import Path

import pytest

from swarm.compare.chart import plot
from swarm.compare.nginx import config, request_rate, wait_for_second
from swarm.compare.options import parse_modes
from swarm.compare.phase import Phase, _check_copies, sha256_file
from swarm.compare.report import table
from swarm.compare.results import ModeResult, Run, bounds, hybrid_bound
from swarm.errors import CompareError, UsageError

MiB = 2**20


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("central,swarm,hybrid", ("central", "swarm", "hybrid")),
        ("hybrid,central", ("central", "hybrid")),
        (" swarm ", ("swarm",)),
        ("hybrid", ("hybrid",)),
    ],
)
def test_modes_are_read_in_the_tables_order(text: str, want: tuple[str, ...]) -> None:
    assert parse_modes(text) == want


@pytest.mark.parametrize("text", ["", "central,,swarm", "p2p", "central,central", "CDN"])
def test_a_bad_modes_list_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--modes"):
        parse_modes(text)


@pytest.mark.parametrize(
    "args",
    [
        ["--modes", "bogus"],
        ["--modes", "central,p2p"],
        ["--modes", "hybrid,hybrid"],
        ["--modes", "hybrid", "--churn", "6"],
        ["--central", "apache"],
        ["--central", "nginx", "--modes", "swarm,hybrid"],  # nginx would serve nothing
        ["--central", "nginx", "--fail", "central@1s"],  # --fail kills swarm's server
    ],
)
def test_compare_refuses_a_bad_mode_before_anything_runs(args: list[str]) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "compare", "--size", "64K", "--no-plot", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) in (1, 3), r.stderr  # click's usage: 3 lines
    assert "Traceback" not in r.stderr and ("--modes" in r.stderr or "--central" in r.stderr)


def test_the_hybrid_bound_is_the_swarms_with_the_same_server_budget() -> None:
    # D = max(F/u_s_total, F/d_min, N F/(u_s_total + N u)) with u_s_total = u_s.
    f, n, u_s, u = 4 * MiB, 8, MiB, MiB
    assert hybrid_bound(f, n, u_s, u) == pytest.approx(bounds(f, n, u_s, u)[1]) == 4.0
    assert hybrid_bound(f, 8, u_s, MiB / 8) == pytest.approx(8 * 4 / 2)  # N F/(u_s + N u)
    assert hybrid_bound(f, 1, u_s, u, d_min=MiB / 2) == pytest.approx(8.0)  # F/d_min


def _run(hybrid: ModeResult | None, skipped: str | None = None) -> Run:
    run = Run(2, ModeResult([4.0, 4.1]), ModeResult([1.2, 1.3]), 4.0, 1.0)
    run.hybrid = hybrid
    run.bound_hybrid = None if hybrid is None else 1.0
    run.hybrid_skipped = skipped
    run.webseed_server = None if hybrid is None else "swarm"
    return run


def test_the_table_has_a_hybrid_row_with_its_bound_and_the_web_seeds_share() -> None:
    from rich.console import Console

    hybrid = ModeResult([1.1, 1.5], webseed_bytes=MiB)  # 2 copies of 1 MiB: half from the seed
    t, lines = table([_run(hybrid)], "a.bin", MiB, MiB, MiB, None)
    console = Console(width=200, record=True)
    console.print(t)
    text = console.export_text()
    row = next(line for line in text.splitlines() if "hybrid" in line)
    assert "hybrid (web seed 50%)" in row and "1.50" in row and "1.00" in row  # total, bound
    assert "2.73x" in row  # central's 4.1 s over hybrid's 1.5 s
    assert any("only web seed" in line and "u_s_total = u_s" in line for line in lines)


def test_a_skipped_hybrid_is_said_under_the_table_and_in_json() -> None:
    run = _run(None, "--fail kills the tracker and seed of the swarm phase, which hybrid has not")
    _, lines = table([run], "a.bin", MiB, MiB, MiB, None)
    assert any(line.startswith("hybrid: not run: --fail kills the tracker") for line in lines)
    obj = json.loads(json.dumps(run.as_dict()))
    assert "hybrid" not in obj and obj["hybrid_skipped"].startswith("--fail kills")
    assert "hybrid" not in obj["bounds"]


def test_json_carries_the_hybrid_mode_its_bound_and_speedup() -> None:
    obj = json.loads(json.dumps(_run(ModeResult([1.0, 2.0], webseed_bytes=123)).as_dict()))
    assert obj["hybrid"]["total"] == 2.0 and obj["hybrid"]["webseed_bytes"] == 123
    assert obj["hybrid"]["webseed_server"] == "swarm" and obj["central_server"] == "swarm"
    assert obj["bounds"] == {"central": 4.0, "swarm": 1.0, "hybrid": 1.0}
    assert obj["hybrid_speedup"] == pytest.approx(4.1 / 2.0, abs=1e-3)


def test_a_mode_left_out_is_null_in_json_and_absent_from_the_table() -> None:
    run = Run(2, ModeResult(ran=False), ModeResult(ran=False), 4.0, 1.0)
    run.hybrid, run.bound_hybrid = ModeResult([1.0, 1.2]), 1.0
    obj = run.as_dict()
    assert obj["central"] is None and obj["swarm"] is None and obj["speedup"] is None
    assert math.isnan(run.central.total)
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(table([run], "a.bin", MiB, MiB, MiB, None)[0])
    text = console.export_text()
    assert "hybrid" in text and "central" not in text and "│ swarm" not in text


def test_the_chart_draws_hybrid_as_a_third_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    drawn: list[str] = []
    real_savefig = plt.Figure.savefig

    def savefig(fig: plt.Figure, *args: object, **kwargs: object) -> None:
        drawn.extend(str(line.get_label()) for line in fig.axes[0].get_lines())
        drawn.extend(str(c.get_label()) for c in fig.axes[0].containers)
        real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", savefig)
    runs = [_run(ModeResult([1.0, 1.4])), _run(ModeResult([1.1, 1.6]))]
    runs[1].peers = 4
    plot(runs, tmp_path / "c.png", MiB, MiB)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert "hybrid (server as web seed) (measured)" in drawn
    assert "hybrid (server as web seed) bound D_p2p" in drawn


def test_nginx_is_capped_per_request_so_that_n_at_once_make_u_s() -> None:
    f, u_s = MiB, MiB
    for n in (1, 2, 8, 100):
        rate = request_rate(f, n, u_s)
        # nginx sends a second's worth, then waits for it: F bytes end at
        # ceil(F / rate) - 1 s, and F / rate - 1 is the bound N F / u_s.
        assert f / rate - 1 == pytest.approx(n * f / u_s, rel=1e-3)
    text = config(Path("/tmp/p"), "127.0.0.1", 8080, {2: 1000, 8: 250}, "")
    assert "listen 127.0.0.1:8080;" in text and "daemon off;" in text
    assert "location /n2/ { limit_rate 1000; }" in text
    assert "location /n8/ { limit_rate 250; }" in text
    assert "pid /tmp/p/nginx.pid;" in text and "error_log /tmp/p/error.log" in text
    assert "scgi_temp_path /tmp/p/tmp/scgi;" in text
    bare = config(Path("/tmp/p"), "10.0.0.2", 80, {}, "--without-http_scgi_module")
    assert "limit_rate" not in bare and "scgi" not in bare


def test_the_central_phase_under_nginx_starts_early_in_a_wall_clock_second() -> None:
    # nginx's limit_rate counts whole seconds of the wall clock from a request's own: one made
    # late in a second gets a second's worth more as soon as its timer runs a little late.
    assert wait_for_second(1000.0) == 0.0
    assert wait_for_second(1000.2) == 0.0
    for now in (1000.3, 1000.5, 1000.97, 1000.999):
        wait = wait_for_second(now)
        assert 0 < wait <= 0.75
        assert 0.0 < (now + wait) % 1.0 < 0.1  # just after the next whole second


def test_missing_nginx_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm.compare import nginx

    monkeypatch.setattr(nginx.shutil, "which", lambda *a, **k: None)
    with pytest.raises(UsageError) as err:
        nginx.find_nginx()
    assert str(err.value) == (
        "--central nginx: nginx is not installed (Debian: apt-get install nginx-light)"
    )


def test_the_copies_are_checked_once_the_phase_is_over_and_a_wrong_one_is_named(
    tmp_path: Path,
) -> None:
    # The phase hashes the finished copies after the last one (hashing them as they came took
    # CPU from the downloaders still at work); a wrong copy still fails the run, by name.
    original = tmp_path / "f.bin"
    original.write_bytes(b"x" * 3000)
    folder = tmp_path / "phase"
    for i, data in enumerate([b"x" * 3000, b"x" * 2999 + b"y", b"partial"]):
        (folder / str(i)).mkdir(parents=True)
        (folder / str(i) / "f.bin").write_bytes(data)
    exp = types.SimpleNamespace(path=original)
    phase = Phase(exp, None, folder, 3, sha256_file(original), {}, [])  # type: ignore[arg-type]
    asyncio.run(_check_copies(phase, [True, False, False]))  # 2 is not done: not checked
    with pytest.raises(CompareError, match="downloader 1's copy does not match"):
        asyncio.run(_check_copies(phase, [True, True, False]))
