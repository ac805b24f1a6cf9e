"""The ``swarm`` command: parses options, calls the library, prints, maps errors to exit codes.

One module per command group: :mod:`~swarm.cli.torrent` (create, info), :mod:`~swarm.cli.peer`
(seed, fetch), :mod:`~swarm.cli.tracker`, :mod:`~swarm.cli.central` (serve-central) and
:mod:`~swarm.cli.compare`; what they share is in :mod:`~swarm.cli.common`.

Every command takes ``-v/--verbose``, ``-q/--quiet`` and ``--debug``. A :class:`SwarmError`
becomes ``error: <message>`` on stderr with its exit code (2 for a user's bad input, 1 for a
failure at run time); a download or an experiment cut short by SIGINT or SIGTERM exits 130
or 143, as shells do. A Python traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import importlib
import sys
from typing import ClassVar

import click

from swarm import __version__
from swarm.cli.common import SETTINGS, common_options, report, setup_logging
from swarm.errors import SwarmError


class LazyGroup(click.Group):
    """A group whose commands are imported only when they run (or are listed in ``--help``):
    ``swarm create`` and ``swarm info`` start without asyncio, aiohttp or the peer engine,
    which is a third of their start-up time."""

    lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "create": ("swarm.cli.torrent", "create_command"),
        "info": ("swarm.cli.torrent", "info_command"),
        "tracker": ("swarm.cli.tracker", "tracker_command"),
        "seed": ("swarm.cli.peer", "seed_command"),
        "fetch": ("swarm.cli.peer", "fetch_command"),
        "fetch-group": ("swarm.cli.fetch_group", "fetch_group_command"),
        "serve-central": ("swarm.cli.central", "serve_central_command"),
        "compare": ("swarm.cli.compare", "compare_command"),
        "dht": ("swarm.cli.dht", "dht_command"),
        "build-native": ("swarm.cli.native", "build_native_command"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
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


def _fail(message: str, code: int) -> int:
    """Print ``error: MESSAGE``, tell a status reader, and give the exit code."""
    click.echo(f"error: {message}", err=True)
    if SETTINGS.status is not None:
        from swarm.status import Event, Status

        report(Status(Event.ERROR, message=message, exit_code=code))
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (never raise, never print a traceback unless --debug)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    SETTINGS.verbose, SETTINGS.quiet, SETTINGS.debug = 0, False, "--debug" in argv
    SETTINGS.status = None
    try:
        rv = cli.main(args=argv, prog_name="swarm", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return _fail("aborted", 130)
    except click.UsageError as exc:
        return _fail(exc.format_message(), 2)
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except SwarmError as exc:
        if SETTINGS.debug:
            raise
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence for a user
        if SETTINGS.debug:
            raise
        return _fail(f"unexpected failure: {type(exc).__name__}: {exc}", 1)


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())


__all__ = ["SETTINGS", "LazyGroup", "cli", "main", "run"]
