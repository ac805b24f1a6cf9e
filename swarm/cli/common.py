"""What every ``swarm`` command shares: output settings and logging, result lines, size and rate
options, writing a file, the status channel and the progress bar (running until a signal:
:mod:`swarm.cli.running`).

Light on purpose: ``swarm create`` and ``swarm info`` import this and nothing of asyncio,
aiohttp or the peer engine (they are imported inside the functions that need them).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from swarm.errors import StorageError, SwarmError, UsageError
from swarm.units import parse_size

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from swarm.status import Status, StatusWriter

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Settings:
    """Output settings shared by the group and its commands (set by the common options)."""

    verbose = 0
    quiet = False
    debug = False
    status: StatusWriter | None = None  # --status-fd: where machine-readable state goes


SETTINGS = Settings()


def setup_logging() -> None:
    level = logging.WARNING
    if SETTINGS.quiet:
        level = logging.ERROR
    if SETTINGS.verbose == 1:
        level = logging.INFO
    if SETTINGS.verbose >= 2 or SETTINGS.debug:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


def _set_verbose(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value:
        SETTINGS.verbose = max(SETTINGS.verbose, value)
        setup_logging()
    return value


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        SETTINGS.quiet = True
        setup_logging()
    return value


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        SETTINGS.debug = True
        setup_logging()
    return value


def common_options(f: F) -> F:
    """Add -v/-q/--debug to a command; they are handled eagerly and not passed on."""
    f = click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_set_verbose,
        is_eager=True,
        help="More log output (repeat for debug level).",
    )(f)
    f = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_set_quiet,
        is_eager=True,
        help="Print only results and errors.",
    )(f)
    f = click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=_set_debug,
        is_eager=True,
        help="Show Python tracebacks and debug logs.",
    )(f)
    return f


def echo(message: str = "") -> None:
    """Print a result line unless --quiet."""
    if not SETTINGS.quiet:
        click.echo(message)


# -- the status channel (swarm.status) --------------------------------------------------------


def _set_status_fd(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    if value is not None:
        from swarm.status import StatusWriter

        SETTINGS.status = StatusWriter(value)


def status_option(f: F) -> F:
    """Add the hidden ``--status-fd N``: write :mod:`swarm.status` lines to file descriptor N."""
    return click.option(
        "--status-fd",
        type=click.IntRange(0),
        hidden=True,
        expose_value=False,
        callback=_set_status_fd,
        is_eager=True,
        help="Write JSON status lines to this file descriptor (for swarm compare).",
    )(f)


def report(status: Status) -> None:
    """Tell the program that started us (``--status-fd``) our state; nothing without one."""
    if SETTINGS.status is not None:
        SETTINGS.status.send(status)


# -- the peer commands' ports -------------------------------------------------------------

DEFAULT_PORT = 6881
PORT_ATTEMPTS = 10  # 6881..6890


def port_option(f: F) -> F:
    """``--port``: 6881 or the next free one up to 6890 when not given; N exactly; 0 any."""
    return click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=None,
        help=f"Port to listen on for peers [default: {DEFAULT_PORT}, or the next free one up "
        f"to {DEFAULT_PORT + PORT_ATTEMPTS - 1}]; 0: any free port.",
    )(f)


def listen_port(port: int | None) -> tuple[int, int]:
    """(port, attempts) for the session: a port the user named is that port or nothing."""
    return (DEFAULT_PORT, PORT_ATTEMPTS) if port is None else (port, 1)


# -- encryption (MSE/PE) -------------------------------------------------------------------


def encryption_option(f: F) -> F:
    """``--encryption prefer|require|off`` (see :mod:`swarm.mse_shell`), and ``--no-utp``."""
    utp = "Speak uTP (BEP 29) too, as other clients do: dial it first, then TCP; accept both. "
    utp += "--no-utp: TCP only (faster on a LAN: swarm's uTP is pure Python)."
    f = click.option("--utp/--no-utp", default=True, help=utp + "  [default: on]")(f)
    return click.option(
        "--encryption",
        type=click.Choice(["prefer", "require", "off"]),
        default="prefer",
        show_default=True,
        help="Peer encryption (MSE/PE). prefer: accept both, dial plain first and encrypted "
        "if refused; require: encrypted (RC4) only; off: unencrypted only.",
    )(f)


# -- sizes, rates, trackers -------------------------------------------------------------


def size_option(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """An option's callback: a size with units (16K, 4M, 1.5G, 1048576) in bytes."""
    if value is None:
        return None
    try:
        return parse_size(value)
    except SwarmError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def tracker_tiers(options: tuple[str, ...]) -> list[list[str]]:
    """``-t`` values as announce tiers (BEP 12): one tier per option, commas within a tier;
    a URL no client could use is :class:`UsageError` (exit 2, one line)."""
    if not options:
        return []  # and swarm create imports metainfo later, while it hashes
    from swarm.metainfo import check_tracker_url  # lazy: create --help stays light

    tiers = []
    for option in options:
        urls = [u.strip() for u in option.split(",")]
        if not all(urls):
            raise UsageError(f"-t {option!r}: an empty tracker URL (commas separate URLs)")
        tiers.append([check_tracker_url(u) for u in urls])
    return tiers


def eta(left: int, rate: float) -> str:
    """Time left at *rate* bytes per second: ``MM:SS``, ``H:MM:SS``, or ``--:--`` at rest."""
    if rate <= 0:
        return "--:--"
    s = int(left / rate)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
        if s >= 3600
        else f"{s // 60:02d}:{s % 60:02d}"
    )


# -- files ------------------------------------------------------------------------------------

# The user named a path that cannot be: bad input (exit 2). Any other failure to write (a full
# disk, a file size limit, a read-only folder, an I/O error) is a failure at run time (exit 1).
_BAD_PATH = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


def write_file(out: Path, data: bytes) -> None:
    """Write *data* to *out* whole or not at all (through ``OUT.tmp``, then a rename)."""
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        message = f"cannot write {out}: {exc.strerror or exc}"
        if exc.errno in _BAD_PATH:
            raise UsageError(message) from None
        raise StorageError(message) from None


# -- the progress bar --------------------------------------------------------------------------


class Display:
    """A progress bar on stderr, shown only on a terminal and never with --quiet.

    ``transfer=True`` shows bytes, speed and time left (for hashing); otherwise the percent and
    an info text the caller keeps up to date (rates, peers, ETA)."""

    def __init__(
        self, label: str, total: int | None = None, *, transfer: bool = False, enabled: bool = True
    ) -> None:
        self.shown = enabled and not SETTINGS.quiet and sys.stderr.isatty()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if not self.shown:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            ProgressColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns: tuple[ProgressColumn, ...]
        if transfer:
            columns = (
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            )
        else:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[info]}"),
            )
        self._bar = Progress(*columns, console=Console(stderr=True), transient=True)
        self._task = self._bar.add_task(label, total=total, info="")
        self._bar.start()

    def update(self, done: int, total: int | None = None, info: str = "") -> None:
        """*done* of *total* (unchanged when None); *info* for the text column."""
        if self._bar is not None and self._task is not None:
            if total:
                self._bar.update(self._task, total=total)
            self._bar.update(self._task, completed=done, info=info)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
