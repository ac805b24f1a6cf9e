"""Churn in ``swarm compare`` (``--churn RATE``): leechers that leave the swarm and come back.

The schedule is pure: a function of a seeded :class:`random.Random`, N, the rate, the time a
leecher stays away and a horizon. Each leecher leaves as a Poisson process of RATE departures
per minute *while it is in the swarm and not done*: its first departure comes after an
exponential wait (mean 60 / RATE s), it stays away a fixed AWAY seconds, and its next wait starts
when it is back. The shell (:mod:`~swarm.compare.experiment`) skips an absence whose leecher
has finished by then: a leecher that is done seeds on and never leaves.

A leaver resumes: its downloader is closed (its session, port and connections; the tracker is
told ``stopped``) and started anew on the same folder, so it keeps the pieces it had. Its time
runs from the first 'go' to its verified copy, the time away included: that is the delay churn
costs a user.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from swarm.errors import UsageError

DEFAULT_AWAY = 2.0  # seconds: the texts' "a 2 s delay if peers disconnect"

_RATE = re.compile(r"(?P<value>[0-9.eE+-]+)\s*(?P<unit>/min|/s)?")


def parse_rate(text: str) -> float:
    """``--churn RATE``: departures per leecher per minute (``6``, ``6/min``) or per second
    (``0.1/s``, turned into per minute); a positive finite number."""
    m = _RATE.fullmatch(text.strip())
    try:
        value = float(m["value"]) if m else None
    except ValueError:
        value = None
    if m is None or value is None or not 0 < value < float("inf"):
        raise UsageError(
            f"--churn takes departures per leecher per minute like 6 or 6/min (or 0.1/s), "
            f"a positive number, not {text!r}"
        )
    return value * 60 if m["unit"] == "/s" else value


@dataclass(frozen=True, slots=True)
class Churn:
    """What ``--churn`` asked for: RATE departures per leecher per minute, AWAY seconds away
    each time, the random seed of the schedule."""

    rate: float
    away: float = DEFAULT_AWAY
    seed: int = 0
    seed_leaves: bool = False  # the seed leaves for good once a leecher is done

    def describe(self) -> str:
        mean = 60 / self.rate
        return (
            f"churn: each leecher leaves {self.rate:g} time{'' if self.rate == 1 else 's'} a "
            f"minute on average (one every "
            f"{mean:.3g} s while downloading), away {self.away:g} s each time, then resumes; "
            f"--churn-seed {self.seed}"
            + (
                "; the seed leaves for good once a leecher is done (the swarm holds every piece)"
                if self.seed_leaves
                else ""
            )
        )

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "rate_per_minute": self.rate,
            "away": self.away,
            "seed": self.seed,
            "seed_leaves": self.seed_leaves,
        }


@dataclass(frozen=True, slots=True, order=True)
class Absence:
    """Leecher *who* leaves *leave* seconds after 'go' and is back at *back*."""

    leave: float
    back: float
    who: int


def schedule(churn: Churn, n: int, horizon: float) -> list[Absence]:
    """Every absence of N leechers that starts before *horizon* seconds, by time of leaving.
    Each leecher draws from a random source of its own, seeded by the seed and its number: the
    same seed, rate and away give leecher i the same absences whatever N and the horizon (a
    longer horizon only adds absences at the end)."""
    per_second = churn.rate / 60
    out: list[Absence] = []
    for who in range(n):
        rng = random.Random(f"{churn.seed}:{who}")
        t = rng.expovariate(per_second)
        while t < horizon:
            out.append(Absence(t, t + churn.away, who))
            t += churn.away + rng.expovariate(per_second)
    return sorted(out)


@dataclass(slots=True)
class Applied:
    """The absences that happened in one phase (those of leechers not done by then)."""

    absences: list[Absence]
    resumed: dict[int, int] = field(default_factory=dict)  # a leaver: bytes it had at its return
    seed_left: float | None = None  # when the seed left (--churn-seed-leaves), s from 'go'

    @property
    def leavers(self) -> int:
        return len({a.who for a in self.absences})

    def note(self, n: int) -> str:
        """'5 departures by 4 of 8 leechers' for the table."""
        of = f"{self.leavers} of {n} leecher{'s' if n != 1 else ''}"
        note = f"{len(self.absences)} departure{'s' if len(self.absences) != 1 else ''} by {of}"
        if self.resumed:
            kept = sum(1 for b in self.resumed.values() if b > 0)
            note += f", {kept} resumed with pieces they had"
        if self.seed_left is not None:
            note += f"; the seed left at {self.seed_left:.1f} s"
        return note

    def as_list(self) -> list[dict[str, float | int | None]]:
        """Each absence, with what its leecher had at its last return (bytes)."""
        return [
            {
                "who": a.who,
                "leave": round(a.leave, 3),
                "back": round(a.back, 3),
                "had_at_last_return": self.resumed.get(a.who),
            }
            for a in self.absences
        ]


def delay(with_churn: list[float], without: list[float]) -> dict[str, float]:
    """What churn cost: the median and the last completion time, with minus without (s)."""
    import statistics

    return {
        "median": round(statistics.median(with_churn) - statistics.median(without), 3),
        "total": round(max(with_churn) - max(without), 3),
    }


__all__ = ["DEFAULT_AWAY", "Absence", "Applied", "Churn", "delay", "parse_rate", "schedule"]
