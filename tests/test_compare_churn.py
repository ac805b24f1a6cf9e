"""The churn schedule of ``swarm compare --churn`` (pure: no processes), its parsing, and what
the table, the JSON and the scenario's lines make of a churned run."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from swarm.compare.churn import Absence, Applied, Churn, delay, parse_rate, schedule
from swarm.compare.results import Cutoff, ModeResult, Run
from swarm.compare.scenario import TEXTS, rates, scenario_lines
from swarm.errors import UsageError


@pytest.mark.parametrize(
    ("text", "per_minute"), [("6", 6.0), ("6/min", 6.0), ("0.1/s", 6.0), (" 1.5 ", 1.5)]
)
def test_the_rate_is_per_leecher_per_minute_or_per_second(text: str, per_minute: float) -> None:
    assert parse_rate(text) == pytest.approx(per_minute)


@pytest.mark.parametrize("text", ["0", "-1", "fast", "nan", "inf", "6/h", ""])
def test_a_rate_that_is_not_a_positive_number_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--churn"):
        parse_rate(text)


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    a = schedule(Churn(6, 2.0, seed=1), 8, 120.0)
    assert a == schedule(Churn(6, 2.0, seed=1), 8, 120.0)
    assert a != schedule(Churn(6, 2.0, seed=2), 8, 120.0)


def test_each_leecher_is_away_for_the_stated_time_and_never_twice_at_once() -> None:
    plan = schedule(Churn(30, 3.0, seed=5), 5, 60.0)
    assert plan == sorted(plan)  # by time of leaving
    for who in range(5):
        mine = [a for a in plan if a.who == who]
        assert all(a.back - a.leave == pytest.approx(3.0) for a in mine)
        assert all(b.leave >= a.back for a, b in zip(mine, mine[1:], strict=False))
        assert all(0 < a.leave < 60.0 for a in mine)


def test_the_rate_is_departures_per_leecher_per_minute_on_average() -> None:
    """At 6 a minute and no time away, 100 leechers over 10 minutes leave about 6,000 times."""
    plan = schedule(Churn(6, 0.0, seed=3), 100, 600.0)
    assert len(plan) == pytest.approx(6000, rel=0.05)
    # Time away is time not churning: a leecher away half the time leaves half as often.
    away = schedule(Churn(6, 10.0, seed=3), 100, 600.0)
    assert len(away) == pytest.approx(3000, rel=0.08)


def test_a_longer_horizon_only_adds_absences_at_the_end() -> None:
    short = schedule(Churn(12, 2.0, seed=9), 6, 30.0)
    long = schedule(Churn(12, 2.0, seed=9), 6, 90.0)
    assert short == [a for a in long if a.leave < 30.0]
    # and more leechers only add theirs
    assert short == [a for a in schedule(Churn(12, 2.0, seed=9), 9, 30.0) if a.who < 6]


def test_the_delay_is_with_churn_minus_without() -> None:
    assert delay([5.0, 7.0, 9.0], [4.0, 4.5, 5.0]) == {"median": 2.5, "total": 4.0}


def _run(with_churn: list[float]) -> Run:
    churned = ModeResult(with_churn, churn=Applied([Absence(1.0, 3.0, 0), Absence(2.0, 4.0, 1)]))
    churned.churn.resumed[0] = 100_000  # type: ignore[union-attr]
    return Run(2, ModeResult([8.0, 8.0]), ModeResult([4.0, 4.2]), 8.0, 4.0, churned=churned)


def test_the_run_reports_the_churn_delay_in_its_json() -> None:
    d = _run([6.0, 7.2]).as_dict()
    assert d["churn_delay"] == {"median": 2.5, "total": 3.0}
    churn = d["swarm_churn"]
    assert churn["total"] == 7.2  # type: ignore[index]
    assert churn["departures"][0] == {  # type: ignore[index]
        "who": 0,
        "leave": 1.0,
        "back": 3.0,
        "had_at_last_return": 100_000,
    }


def test_the_table_has_a_churn_row_and_the_delay_line() -> None:
    from rich.console import Console

    from swarm.compare.report import table

    t, lines = table([_run([6.0, 7.2])], "a.bin", 2**20, 2**20, 2**20, None, Churn(6, 2, 1))
    console = Console(width=200, record=True)
    console.print(t)
    text = console.export_text()
    assert "swarm + churn" in text and "2 departures by 2 of 2 leechers" in text
    assert any("delayed the median copy by +2.50 s and the last by +3.00 s" in x for x in lines)
    assert any("--churn-seed 1" in x for x in lines)


def test_a_cutoff_is_extrapolated_and_says_so() -> None:
    c = Cutoff(at=30.0, received=3_000_000, needed=10**9, finished=0)
    assert c.rate == pytest.approx(100_000)
    assert c.extrapolated == pytest.approx(10_000)
    assert "extrapolated, not measured" in c.note()
    central = ModeResult([], cutoff=c)
    assert central.failed is None and central.as_dict()["total"] is None


def test_the_rate_over_time_is_the_bytes_delivered_per_second() -> None:
    samples = [(float(t), 1000 * t * t) for t in range(11)]  # accelerating
    got = rates(samples, 2.0)
    assert got[0] == (2.0, 2000.0)
    assert got[-1] == (10.0, (100_000 - 64_000) / 2)


def test_the_scenario_sets_the_claim_beside_what_was_measured() -> None:
    n, size = 100, TEXTS.size
    swarm = ModeResult([100.0 + i / 10 for i in range(n)])
    swarm.samples = [(float(t), min(n * size, int(t * 9e6))) for t in range(0, 115)]
    central = ModeResult([], cutoff=Cutoff(30.0, 3_000_000, n * size, 0))
    run = Run(n, central, swarm, 10_000.0, 100.0)
    lines = scenario_lines(TEXTS, run, size)
    text = "\n".join(lines)
    assert "peak 9 MB/s" in text and "90% of N x u" in text
    assert f"median {statistics.median(swarm.times):.1f} s" in text
    assert "~10000 s EXTRAPOLATED" in text
    header = "\n".join(TEXTS.header(100, 10**7))
    assert "F = 10 MB" in header and "100 kB/s" in header and "NOT" not in header
    assert "N = 20, NOT the texts' 100" in "\n".join(TEXTS.header(20, 10**7))


def _scenario_run() -> Run:
    swarm = ModeResult([2.0, 2.5, 3.0])
    swarm.samples = [(float(t), min(600_000, t * 250_000)) for t in range(5)]
    central = ModeResult([], cutoff=Cutoff(1.0, 100_000, 600_000, 0))
    return Run(3, central, swarm, 6.0, 2.0, churned=_run([3.0, 3.5]).churned)


def test_the_table_labels_a_cut_off_central_phase_extrapolated() -> None:
    from rich.console import Console

    from swarm.compare.report import table

    t, lines = table([_scenario_run()], "a.bin", 200_000, 100_000, 100_000, None)
    console = Console(width=200, record=True)
    console.print(t)
    text = console.export_text()
    assert "~6 extrapolated" in text and "stopped at 1 s (cutoff), 0 of 3 done" in text
    assert "~2x extrapolated" in text  # the speedup against an extrapolated end says so
    assert any("extrapolated, not measured" in x for x in lines)


def test_the_chart_draws_the_rate_panel_and_the_churned_cdf(tmp_path: Path) -> None:
    from swarm.compare.chart import plot

    out = tmp_path / "c.png"
    plot([_scenario_run()], out, 200_000, 100_000, 100_000)
    assert out.stat().st_size > 10_000


def test_repeated_n_spreads_each_mode_that_finished_churn_included() -> None:
    from swarm.compare.report import table

    runs = [_scenario_run(), _scenario_run()]
    runs[1].swarm.times = [2.0, 2.5, 4.0]
    _, lines = table(runs, "a.bin", 200_000, 100_000, 100_000, None)
    (spread,) = [x for x in lines if x.startswith("N=3, 2 runs")]
    assert "swarm 3.00 to 4.00 s" in spread and "swarm + churn 3.50 to 3.50 s" in spread
    assert "central" not in spread  # cut off both times: no total to spread
