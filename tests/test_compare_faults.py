"""``swarm compare --fail``: parsing, which phase a fault belongs to, what a phase came to,
and the supervisor that kills on time and gives up a phase that cannot finish."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import pytest

from swarm.compare import ModeResult, Run
from swarm.compare import faults as faults_module
from swarm.compare.faults import Fault, Outcome, parse_faults, phase_faults, supervise
from swarm.errors import UsageError


def test_parse_faults_takes_repeats_lists_and_units() -> None:
    got = parse_faults(["central@5s", "tracker@0.5,seed@250ms"])
    assert got == [Fault("central", 5.0), Fault("tracker", 0.5), Fault("seed", 0.25)]
    assert parse_faults([]) == []
    assert parse_faults(["seed@0s"]) == [Fault("seed", 0.0)]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("dht@5s", "no part 'dht'"),
        ("central", "PART@TIME"),
        ("central@", "PART@TIME"),
        ("central@-1s", "0 s or more"),
        ("central@1.2.3s", "not a number"),
        ("central@5h", "PART@TIME"),
        ("central@1s,central@2s", "given twice"),
        ("central@1s,", "PART@TIME"),
    ],
)
def test_parse_faults_refuses_bad_values(value: str, words: str) -> None:
    with pytest.raises(UsageError, match=words) as err:
        parse_faults([value])
    assert "\n" not in str(err.value)


def test_each_fault_belongs_to_the_phase_that_needs_the_part() -> None:
    fs = parse_faults(["central@1s,tracker@2s,seed@3s"])
    assert phase_faults(fs, swarm=False) == [Fault("central", 1.0)]
    assert phase_faults(fs, swarm=True) == [Fault("tracker", 2.0), Fault("seed", 3.0)]


def test_outcome_words() -> None:
    out = Outcome(8, [1.0, 2.0, 3.0, None, None, None, None, None])
    out.killed.append((Fault("central", 5.0), 5.01))
    out.ended = "no progress for 5 s"
    assert out.finished == 3
    assert out.failed() == "central server killed at 5.0 s; 3 of 8 finished (no progress for 5 s)"
    assert out.note() == "failed: central server killed at 5.0 s; 3 of 8 finished"
    fine = Outcome(2, [1.0, 2.0], [(Fault("tracker", 0.5), 0.5)])
    assert fine.failed() is None
    assert fine.note() == "tracker killed at 0.5 s; all 2 finished"


def test_a_failed_mode_in_json_has_no_total_and_says_why() -> None:
    out = Outcome(2, [1.5, None], [(Fault("central", 1.0), 1.0)], "no progress for 5 s")
    failed = ModeResult([1.5], processes=2, outcome=out)
    run = Run(2, failed, ModeResult([1.0, 1.2]), 8.0, 4.0)
    obj = json.loads(json.dumps(run.as_dict(), allow_nan=False))
    assert obj["central"]["failed"].startswith("central server killed at 1.0 s; 1 of 2 finished")
    assert obj["central"]["finished"] == 1 and obj["central"]["total"] is None
    assert obj["central"]["killed"] == [{"part": "central", "at": 1.0}]
    assert obj["speedup"] is None and math.isnan(run.speedup)
    assert "failed" not in obj["swarm"]  # no fault there: the output as without --fail


def test_the_table_shows_a_failed_mode(capsys: pytest.CaptureFixture[str]) -> None:
    from swarm.cli.compare import _table

    out = Outcome(8, [1.0] * 3 + [None] * 5, [(Fault("central", 5.0), 5.0)], "x")
    run = Run(8, ModeResult([1.0] * 3, outcome=out), ModeResult([2.0] * 8), 32.0, 4.0)
    info = {"file": "a.bin", "size": 2**20, "upload_rate": 2**20, "peer_upload_rate": 2**20}
    _table([run], info | {"download_rate": None}, None)
    text = capsys.readouterr().out
    assert "N=8 central: failed: central server killed at 5.0 s; 3 of 8 finished (x)" in text
    assert "what happened" in text and "failed" in text


def test_the_chart_skips_a_failed_point(tmp_path: Path) -> None:
    from swarm.compare import plot

    out = Outcome(2, [None, None], [(Fault("central", 1.0), 1.0)], "x")
    runs = [
        Run(1, ModeResult([2.0]), ModeResult([1.0]), 2.0, 1.0),
        Run(2, ModeResult([], outcome=out), ModeResult([1.0, 1.5]), 4.0, 1.5),
    ]
    plot(runs, tmp_path / "c.png", 2**20, 2**20)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


class Part:
    def __init__(self) -> None:
        self.killed_at: float | None = None

    def kill(self) -> None:
        self.killed_at = time.monotonic()


async def _after(seconds: float, fail: bool = False) -> float:
    await asyncio.sleep(seconds)
    if fail:
        raise RuntimeError("downloader 1 stopped: http://x/a: the server went away; run again")
    return seconds


def test_supervise_kills_on_time_and_keeps_the_finished(tmp_path: Path) -> None:
    part = Part()
    t0 = time.monotonic()
    jobs = [_after(0.05), _after(0.3, fail=True)]
    got = asyncio.run(supervise(jobs, [(Fault("central", 0.1), part)], tmp_path, t0, 10, print))
    assert part.killed_at is not None and part.killed_at - t0 == pytest.approx(0.1, abs=0.05)
    assert got.times == [0.05, None]
    assert got.failed() == (
        "central server killed at 0.1 s; 1 of 2 finished (1 downloader stopped: the server "
        "went away)"
    )


def test_supervise_gives_up_a_phase_without_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faults_module, "STALL", 0.3)
    monkeypatch.setattr(faults_module, "POLL", 0.05)
    t0 = time.monotonic()
    jobs = [_after(0.05), _after(60)]
    got = asyncio.run(supervise(jobs, [(Fault("seed", 0.1), Part())], tmp_path, t0, 30, print))
    assert time.monotonic() - t0 < 2
    assert got.failed() == "seed killed at 0.1 s; 1 of 2 finished (no progress for 0.3 s)"


def test_supervise_has_a_deadline_even_while_bytes_arrive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faults_module, "POLL", 0.05)
    counter = iter(range(10**6))
    monkeypatch.setattr(faults_module, "written", lambda folder: next(counter))
    t0 = time.monotonic()
    got = asyncio.run(
        supervise([_after(60)], [(Fault("seed", 0), Part())], tmp_path, t0, 0.5, print)
    )
    assert time.monotonic() - t0 < 2
    assert got.failed() == "seed killed at 0.0 s; 0 of 1 finished (no end within 0.5 s, --timeout)"


def test_a_phase_out_of_time_without_faults_says_so_and_is_the_error_line() -> None:
    from swarm.compare.report import out_of_time

    late = Outcome(4, [1.0, None, 2.0, None], ended="no end within 5 s, --timeout", faults=False)
    assert late.failed() == "2 of 4 finished (no end within 5 s, --timeout)"
    assert late.note() == "failed: 2 of 4 finished (no end within 5 s, --timeout)"
    fine = Run(4, ModeResult([1.0] * 4), ModeResult([2.0] * 4), 8.0, 2.0)
    assert out_of_time([fine]) is None
    faulted = Outcome(4, [1.0, None, None, None], [(Fault("seed", 1.0), 1.0)], "no progress")
    killed = Run(4, ModeResult([1.0] * 4), ModeResult([1.0], outcome=faulted), 8.0, 2.0)
    assert out_of_time([fine, killed]) is None  # --fail's failures are results, not errors
    timed_out = Run(4, ModeResult([1.0, 2.0], outcome=late), ModeResult([2.0] * 4), 8.0, 2.0)
    assert out_of_time([killed, timed_out]) == (
        "error: N=4 central: 2 of 4 finished (no end within 5 s, --timeout)"
    )


def test_a_phase_out_of_time_is_an_outcome_and_other_errors_are_raised() -> None:
    from swarm.compare.children import PhaseTimeout
    from swarm.compare.phase import _errors, _out_of_time
    from swarm.errors import CompareError

    async def jobs(*results: float | Exception) -> list[asyncio.Future[float]]:
        out: list[asyncio.Future[float]] = []
        for r in results:
            f = asyncio.get_running_loop().create_future()
            f.set_exception(r) if isinstance(r, Exception) else f.set_result(r)
            out.append(f)
        return out

    async def main() -> None:
        done = await jobs(1.0, 2.0)
        assert not _errors(done) and _out_of_time(done, 5) is None
        late = await jobs(1.0, PhaseTimeout("downloader 1: no done within 5 s (--timeout)"))
        assert _errors(late)
        got = _out_of_time(late, 5)
        assert got is not None and got.times == [1.0, None] and not got.faults
        assert got.failed() == "1 of 2 finished (no end within 5 s, --timeout)"
        crashed = await jobs(PhaseTimeout("late"), CompareError("downloader 1 stopped: disk full"))
        with pytest.raises(CompareError, match="disk full"):
            _errors(crashed)

    asyncio.run(main())


def test_the_central_phase_stops_at_the_timeout_when_its_bound_lies_past_it() -> None:
    from types import SimpleNamespace
    from typing import Any

    from swarm.compare.experiment import central_cutoff

    said: list[str] = []

    def exp(cutoff: float | None, timeout: float = 600) -> Any:
        return SimpleNamespace(central_cutoff=cutoff, timeout=timeout, say=said.append)

    assert central_cutoff(exp(None), 400.0) is None  # it can finish: measured, not cut
    assert central_cutoff(exp(30.0), 400.0) == 30.0  # --central-cutoff / --scenario's
    assert said == []
    assert central_cutoff(exp(None), 800.0) == 600  # --peers 200: 800 s against 600 s
    assert central_cutoff(exp(900.0), 800.0) == 600  # never past --timeout
    assert central_cutoff(exp(30.0), 800.0) == 30.0
    assert said == ["  bound past --timeout: it stops at 600 s, its end extrapolated"] * 2
