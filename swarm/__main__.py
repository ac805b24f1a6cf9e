"""``python -m swarm`` runs the CLI."""

from swarm.cli import run

run()
