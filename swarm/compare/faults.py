"""Faults in ``swarm compare`` (``--fail central@5s``): which part is killed (SIGKILL) how
many seconds after 'go' of the phase where it matters, and what a phase with a fault came to.

The central server matters in the central phase; the tracker and the seed in the swarm phase.
Parsing, the choice of faults for a phase and the outcome's words are pure; :func:`supervise`
is the shell that kills on time and ends a phase that can no longer finish: every downloader
done or stopped, no progress (no copy done, no byte written) for :data:`STALL` seconds after a
kill, or the phase's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from swarm.errors import UsageError
from swarm.units import counted

PARTS = {"central": "central server", "tracker": "tracker", "seed": "seed"}
"""What ``--fail`` can kill, and its name in the output."""

SWARM_PARTS = ("tracker", "seed")  # the parts the swarm phase needs; central: the central's
STALL = 5.0  # seconds without progress after a kill before a phase is given up
POLL = 0.5  # seconds between looks at the downloaders' progress

_FAULT = re.compile(r"(?P<part>[a-z]+)@(?P<at>[-+0-9.eE]+)(?P<unit>ms|s)?")


@dataclass(frozen=True, slots=True)
class Fault:
    """Kill *part* (a key of :data:`PARTS`) *at* seconds after 'go'."""

    part: str
    at: float

    @property
    def name(self) -> str:
        return PARTS[self.part]


def parse_faults(values: Iterable[str]) -> list[Fault]:
    """``--fail`` values (each ``PART@TIME``, or several comma-separated): TIME in seconds,
    ``5``, ``5s``, ``0.5s`` or ``500ms``; each part at most once."""
    out: list[Fault] = []
    for value in values:
        for item in value.split(","):
            m = _FAULT.fullmatch(item.strip())
            if m is None:
                raise UsageError(
                    f"--fail takes PART@TIME like central@5s (PART: {', '.join(PARTS)}), "
                    f"not {item!r}"
                )
            part = m["part"]
            if part not in PARTS:
                raise UsageError(f"--fail {item}: no part {part!r} (one of {', '.join(PARTS)})")
            try:
                at = float(m["at"]) / (1000 if m["unit"] == "ms" else 1)
            except ValueError:
                raise UsageError(f"--fail {item}: {m['at']!r} is not a number of seconds") from None
            if not math.isfinite(at) or at < 0:
                raise UsageError(f"--fail {item}: the time must be 0 s or more")
            if any(f.part == part for f in out):
                raise UsageError(f"--fail: {part} is given twice")
            out.append(Fault(part, at))
    return out


def phase_faults(faults: Iterable[Fault], swarm: bool) -> list[Fault]:
    """The faults that matter in one phase: the tracker's and the seed's in the swarm's,
    the central server's in the central one."""
    return [f for f in faults if (f.part in SWARM_PARTS) == swarm]


@dataclass(slots=True)
class Outcome:
    """What a phase with faults came to: what was killed when, which downloaders finished
    (their times, None for the others) and, if not all did, why the phase ended."""

    n: int
    times: list[float | None]
    killed: list[tuple[Fault, float]] = field(default_factory=list)
    ended: str | None = None  # why the phase was given up, when it was
    faults: bool = True  # the phase had faults to fire (else it ran out of time, say)

    @property
    def finished(self) -> int:
        return sum(t is not None for t in self.times)

    def what_happened(self) -> str:
        """'central server killed at 5.0 s', one clause per kill ('' with none)."""
        return ", ".join(f"{f.name} killed at {t:.1f} s" for f, t in self.killed)

    def failed(self, why: bool = True) -> str | None:
        """None if every downloader finished; else the reason, e.g. 'central server killed
        at 5.0 s; 3 of 8 finished (no progress for 5 s)' (without the part in brackets
        unless *why*)."""
        if self.finished == self.n:
            return None
        head = self.what_happened() or ("no fault fired" if self.faults else "")
        ended = f" ({self.ended})" if self.ended and (why or not self.faults) else ""
        body = f"{self.finished} of {self.n} finished{ended}"
        return f"{head}; {body}" if head else body

    def note(self) -> str:
        """A table cell: the failure in short, or what was killed and that all finished."""
        failed = self.failed(why=False)
        if failed is not None:
            return f"failed: {failed}"
        done = "the copy finished" if self.n == 1 else f"all {self.n} finished"
        return f"{self.what_happened() or 'no fault fired'}; {done}"


class Killable(Protocol):
    """A part's process (a :class:`~swarm.compare.children.Child`)."""

    def kill(self) -> None: ...


def written(folder: Path) -> int:
    """Bytes the downloaders have written under *folder* (allocated blocks: their files are
    sparse until written)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


async def supervise(
    jobs: Sequence[Awaitable[float]],
    kills: Sequence[tuple[Fault, Killable]],
    folder: Path,
    t0: float,
    deadline: float,
    say: Callable[[str], None],
) -> Outcome:
    """Await each downloader's job (its time to a verified copy) while each fault's part is
    killed on time; end the phase when all are done or stopped, when nothing moved for
    :data:`STALL` seconds after a kill, or *deadline* seconds after *t0*."""
    outcome = Outcome(len(jobs), [None] * len(jobs))

    async def kill(fault: Fault, part: Killable) -> None:
        await asyncio.sleep(max(0.0, t0 + fault.at - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            part.kill()
        outcome.killed.append((fault, time.monotonic() - t0))
        say(f"  killed the {fault.name} at {fault.at:g} s (--fail)")

    tasks = [asyncio.ensure_future(job) for job in jobs]
    killers = [asyncio.ensure_future(kill(f, p)) for f, p in kills]
    mark: tuple[int, int] | None = None
    moved = time.monotonic()
    try:
        while pending := [t for t in tasks if not t.done()]:
            await asyncio.wait(pending, timeout=POLL)
            now = time.monotonic()
            if now - t0 > deadline:
                outcome.ended = f"no end within {deadline:g} s, --timeout"
                break
            seen = (sum(t.done() for t in tasks), await asyncio.to_thread(written, folder))
            if seen != mark:
                mark, moved = seen, now
            elif outcome.killed and now - max(moved, t0 + outcome.killed[-1][1]) >= STALL:
                outcome.ended = f"no progress for {STALL:g} s"
                break
    finally:
        for t in (*tasks, *killers):
            t.cancel()
        await asyncio.gather(*tasks, *killers, return_exceptions=True)
    errors = []
    for i, t in enumerate(tasks):
        if t.cancelled():
            continue
        if (exc := t.exception()) is None:
            outcome.times[i] = t.result()
        else:
            errors.append(str(exc))
    if errors and outcome.ended is None:
        # 'downloader 0 stopped: URL: the server closed the connection; run again': the cause
        why = errors[0].rsplit(": ", 1)[-1].split(";")[0]
        outcome.ended = f"{counted(len(errors), 'downloader')} stopped: {why}"
    return outcome
