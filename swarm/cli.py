"""The ``swarm`` command: parses options, calls the library, prints, maps errors to exit codes.

Every command takes ``-v/--verbose``, ``-q/--quiet`` and ``--debug``. A :class:`SwarmError`
becomes ``error: <message>`` on stderr with its exit code (2 for a user's bad input, 1 for a
failure at run time); a Python traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from swarm import __version__
from swarm.errors import SwarmError
from swarm.units import format_size, parse_rate, parse_size

log = logging.getLogger("swarm")


class Settings:
    """Output settings shared by the group and its commands."""

    verbose = 0
    quiet = False
    debug = False


SETTINGS = Settings()


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


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
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


class SizeType(click.ParamType):
    """A size with units: 16K, 4M, 1.5G, 1048576."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except SwarmError as exc:
            self.fail(str(exc), param, ctx)


class RateType(click.ParamType):
    """A rate with units: 500K, 10MiB/s; 0 or 'unlimited' for none."""

    name = "RATE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | None:
        if value is None or isinstance(value, int):
            return value
        try:
            return parse_rate(value)
        except SwarmError as exc:
            self.fail(str(exc), param, ctx)


SIZE = SizeType()
RATE = RateType()


def setup_logging() -> None:
    level = logging.WARNING
    if SETTINGS.quiet:
        level = logging.ERROR
    if SETTINGS.verbose == 1:
        level = logging.INFO
    if SETTINGS.verbose >= 2 or SETTINGS.debug:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


def echo(message: str = "") -> None:
    """Print a result line unless --quiet."""
    if not SETTINGS.quiet:
        click.echo(message)


class LazyGroup(click.Group):
    """A group whose heavier commands are imported only when they run (or are listed in
    ``--help``): ``swarm create`` and ``swarm info`` start without asyncio, aiohttp or the
    peer engine, which is a third of their start-up time."""

    lazy: dict[str, tuple[str, str]] = {
        "tracker": ("tracker.cli", "tracker_command"),
        "seed": ("swarm.cli_peer", "seed_command"),
        "fetch": ("swarm.cli_peer", "fetch_command"),
        "serve-central": ("swarm.cli_central", "serve_central_command"),
        "compare": ("swarm.cli_compare", "compare_command"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            import importlib

            module, attr = self.lazy[cmd_name]
            cmd = getattr(importlib.import_module(module), attr)
            self.add_command(common_options(cmd), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="swarm")
@common_options
def cli() -> None:
    """swarm: share a file through a BitTorrent swarm or a central server, and compare."""
    setup_logging()


def command(name: str | None = None, **kwargs: Any) -> Callable[..., Any]:
    """Register a subcommand with the common options and logging set up."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kw: Any) -> Any:
            setup_logging()
            return f(*args, **kw)

        return cli.command(name, **kwargs)(common_options(wrapper))

    return deco


# -- create / info --------------------------------------------------------------------------


@command("create")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Where to write the .torrent (default: NAME.torrent here).",
)
@click.option(
    "-t",
    "--tracker",
    "trackers",
    multiple=True,
    metavar="URL",
    help="Tracker URL; repeat for more tiers, commas for several URLs in one tier.",
)
@click.option(
    "--piece-length", type=SIZE, help="Piece length (power of two, >= 16K); automatic by default."
)
@click.option(
    "--webseed", "webseeds", multiple=True, metavar="URL", help="Web seed URL (BEP 19); repeatable."
)
@click.option("--private", is_flag=True, help="Mark the torrent private (BEP 27).")
@click.option("--comment", help="A comment stored in the torrent.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def create_cmd(
    path: Path,
    output: Path | None,
    trackers: tuple[str, ...],
    piece_length: int | None,
    webseeds: tuple[str, ...],
    private: bool,
    comment: str | None,
    force: bool,
) -> None:
    """Make a .torrent for the file or folder PATH."""
    from swarm import metainfo
    from swarm.create import create_torrent

    out = output or Path(Path(path).resolve().name + ".torrent")
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists already (use --force to overwrite)")
    tiers = [[u.strip() for u in t.split(",") if u.strip()] for t in trackers]
    with _progress("hashing", enabled=_is_big(path)) as progress:
        data = create_torrent(
            path,
            trackers=tiers,
            piece_length=piece_length,
            webseeds=list(webseeds),
            private=private,
            comment=comment,
            on_progress=progress,
        )
    _write_file(out, data)
    torrent = metainfo.parse(data)
    echo(f"torrent:   {out}")
    echo(f"info-hash: {torrent.info_hash_hex}")
    echo(f"magnet:    {torrent.magnet()}")


def _is_big(path: Path) -> bool:
    try:
        if path.is_file():
            return path.stat().st_size >= 64 * 1024 * 1024
        return path.is_dir()
    except OSError:
        return False


def _write_file(out: Path, data: bytes) -> None:
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise click.UsageError(f"cannot write {out}: {exc.strerror}") from None


class _progress:
    """A rich progress bar on stderr for long jobs, shown only on a terminal."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.enabled = enabled and not SETTINGS.quiet and sys.stderr.isatty()
        self.label = label
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=None)
        return self._update

    def _update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()


@command("info")
@click.argument("torrent", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info_cmd(torrent: Path, as_json: bool) -> None:
    """Show what is inside a .torrent file."""
    from swarm import metainfo

    t = metainfo.load(torrent)
    summary = t.summary()
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    click.echo(f"name:         {t.name}")
    click.echo(f"info-hash:    {t.info_hash_hex}")
    click.echo(f"size:         {format_size(t.length)} ({t.length} bytes)")
    click.echo(f"pieces:       {t.num_pieces} x {format_size(t.piece_length)}")
    click.echo(f"private:      {'yes' if t.private else 'no'}")
    for i, tier in enumerate(t.announce_tiers):
        click.echo(f"tracker {i:<5d} {' '.join(tier)}")
    for url in t.url_list:
        click.echo(f"web seed:     {url}")
    if t.comment:
        click.echo(f"comment:      {t.comment}")
    if t.created_by:
        click.echo(f"created by:   {t.created_by}")
    if t.creation_date:
        import datetime as _dt

        when = _dt.datetime.fromtimestamp(t.creation_date, _dt.UTC)
        click.echo(f"created:      {when:%Y-%m-%d %H:%M:%S} UTC")
    files = [f for f in t.files if not f.padding]
    click.echo(f"files:        {len(files)}")
    for f in files[:50]:
        click.echo(f"  {format_size(f.length):>10}  {f.path_str}")
    if len(files) > 50:
        click.echo(f"  ... and {len(files) - 50} more")
    click.echo(f"magnet:       {t.magnet()}")


# -- entry point ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (never raise, never print a traceback unless --debug)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    SETTINGS.verbose, SETTINGS.quiet, SETTINGS.debug = 0, False, "--debug" in argv
    try:
        rv = cli.main(args=argv, prog_name="swarm", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.UsageError as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except SwarmError as exc:
        if SETTINGS.debug:
            raise
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence for a user
        if SETTINGS.debug:
            raise
        click.echo(f"error: unexpected failure: {type(exc).__name__}: {exc}", err=True)
        return 1


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
