"""Sizes and rates as people write them: ``16K``, ``4M``, ``1.5GiB``, ``10MiB/s``; counts of
things (``1 downloader``, ``2 downloaders``).

K, M, G and T are binary (1024-based) with or without ``i`` and ``B``, as in Transmission,
aria2 and mktorrent. A plain number is bytes.
"""

from __future__ import annotations

import re

from swarm.errors import UsageError

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Parse a size such as ``16K``, ``4MiB`` or ``1073741824`` into bytes."""
    if isinstance(text, int):
        if text < 0:
            raise UsageError(f"a size cannot be negative: {text}")
        return text
    match = _SIZE_RE.match(text)
    if not match:
        raise UsageError(f"not a size: {text!r} (examples: 16K, 4M, 1.5G, 1048576)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def parse_rate(text: str | int | None) -> int | None:
    """Parse a rate such as ``10MiB/s`` or ``500K`` into bytes per second.

    ``None``, ``0``, ``unlimited`` and ``none`` mean no limit and give ``None``.
    """
    if text is None:
        return None
    if isinstance(text, str):
        stripped = text.strip().lower()
        if stripped in ("", "0", "unlimited", "none", "inf"):
            return None
        if stripped.endswith("/s"):
            stripped = stripped[:-2]
        rate = parse_size(stripped)
    else:
        rate = parse_size(text)
    return rate or None


def format_size(n: float) -> str:
    """Render a byte count for people: ``1.5 MiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_rate(bytes_per_second: float) -> str:
    """Render a rate for people: ``12.3 MiB/s``."""
    return format_size(bytes_per_second) + "/s"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """*n* and *noun*, in the plural unless *n* is 1: ``1 copy``, ``2 copies``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
