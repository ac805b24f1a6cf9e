"""``swarm compare``'s options read and checked before anything starts: ``--modes``, the
space a run needs, ``--central`` against the other options. Apart from the CLI module so that
it stays short; nothing here starts a process."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from swarm.compare.settings import MAX_PEERS, MODES
from swarm.errors import UsageError
from swarm.units import format_size


def peer_counts(text: str) -> list[int]:
    """``--peers``: one N or a comma-separated list, every item a whole number (an empty item,
    as in ``1,,2`` or ``1,2,``, is a mistake, not something to skip)."""
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"--peers takes a number or a list like 1,2,4,8, not {text!r}") from None
    if any(n < 1 or n > MAX_PEERS for n in counts):
        raise UsageError(f"--peers: each N must be between 1 and {MAX_PEERS}")
    return counts


def parse_modes(text: str) -> tuple[str, ...]:
    """``--modes``: a comma-separated list of central, swarm and hybrid, each at most once,
    returned in the table's order (central, swarm, hybrid)."""
    given = [m.strip() for m in text.split(",")]
    bad = [m for m in given if m not in MODES]
    if bad or not given:
        raise UsageError(
            f"--modes takes a list of {', '.join(MODES)} (e.g. central,hybrid), not {text!r}"
        )
    if len(set(given)) != len(given):
        raise UsageError(f"--modes names a mode twice: {text!r}")
    return tuple(m for m in MODES if m in given)


def check_central(server: str, modes: tuple[str, ...], faults: bool, lab: bool) -> None:
    """Refuse a --central nginx run that cannot be: nginx missing (one line, how to install
    it), a --fail of the central server (it would kill swarm's server, not nginx)."""
    if server != "nginx":
        return
    from swarm.compare.nginx import find_nginx

    find_nginx()
    if "central" not in modes and not lab:
        raise UsageError(
            "--central nginx serves the central mode (and, with --lab netns, hybrid's web "
            "seed): give --modes with central"
        )
    if faults:
        raise UsageError("--central nginx with --fail is not supported: --fail kills swarm's parts")


def check_space(path: Path | None, nbytes: int | None, counts: list[int]) -> None:
    """Refuse, before anything is written, a comparison the temporary folder has no room for."""
    from swarm.compare.experiment import default_sample, space_needed

    source = path if path is not None else default_sample()
    if nbytes is None and (source is None or not source.is_file()):
        return  # prepare_path says what is wrong
    size = nbytes if nbytes is not None else source.stat().st_size  # type: ignore[union-attr]
    need = space_needed(size, counts, synthetic=nbytes is not None)
    tmp = tempfile.gettempdir()
    free = shutil.disk_usage(tmp).free
    if need > free:
        what = f"--size {format_size(nbytes)}" if nbytes is not None else str(source)
        raise UsageError(
            f"{what} with N up to {max(counts)} needs {format_size(need)} in {tmp} "
            f"(the copies of one phase at once), and only {format_size(free)} is free"
        )


def check_web(address: str | None, stay: bool) -> None:
    """``--web [HOST:]PORT`` read before anything starts; ``--web-stay`` only with it."""
    if address is not None:
        from swarm.compare.web.server import parse_address

        parse_address(address)
    elif stay:
        raise UsageError("--web-stay is for --web")
