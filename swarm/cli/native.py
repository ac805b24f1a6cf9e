"""``swarm build-native``: compile the hot path with mypyc (:mod:`swarm.native_build`)."""

from __future__ import annotations

import click

from swarm import native


@click.command("build-native")
@click.option("--status", "show_status", is_flag=True, help="Only say what is in use, and why.")
@click.option("--clean", is_flag=True, help="Remove the compiled core (swarm runs pure Python).")
def build_native_command(show_status: bool, clean: bool) -> None:
    """Compile swarm's per-message path with mypyc: the peer connection and its state, the
    wire codecs, the request policy, the piece picker, the choker (swarm.native.COMPILED).

    The same code, about a ninth less CPU per message, which is what limits a compare at
    N = 200 on two cores (bench/README). It is used only while the package's sources are the
    ones it was built from: after an edit, swarm is pure Python until this runs again
    (SWARM_NATIVE=0 turns it off). It needs mypy (pip install -e '.[native]'), a C compiler
    and Python's headers; without them it says so and exits 0, and swarm runs as pure Python."""
    from swarm.native_build import build, toolchain_problem
    from swarm.native_build import clean as remove

    if show_status:
        click.echo(f"swarm runs {native.loaded_state()}")
        return
    if clean:
        click.echo("removed the compiled core" if remove() else "no compiled core to remove")
        return
    problem = toolchain_problem()
    if problem is not None:
        click.echo(f"compiled core not built: {problem}; swarm runs as pure Python")
        return
    click.echo(f"compiling {len(native.COMPILED)} modules with mypyc (about half a minute)...")
    result = build()
    click.echo(f"built in {result.seconds:.1f} s: {result.native_dir} (used while it matches)")
