"""``swarm compare``'s experiment: the same file to N downloaders from one central server and
from a swarm, each part its own ``swarm`` process, timed and checked, beside the Kurose and
Ross bounds.

:mod:`~swarm.compare.experiment` runs it, phase by phase through :mod:`~swarm.compare.phase`;
:mod:`~swarm.compare.children` starts the processes and reads their status lines
(:mod:`swarm.status`), :mod:`~swarm.compare.hosts` says where they run;
:mod:`~swarm.compare.results` holds the times and the bounds, :mod:`~swarm.compare.report`
makes the table of them and :mod:`~swarm.compare.chart` draws them.
:mod:`~swarm.compare.faults` (``--fail``), :mod:`~swarm.compare.churn` (``--churn``) and
:mod:`~swarm.compare.scenario` (``--scenario``) are the experiment's variations;
:mod:`~swarm.compare.web` (``--web``) serves the run as a live page.
"""

from swarm.compare.chart import plot
from swarm.compare.experiment import Experiment, prepare_path, run_experiment, space_needed
from swarm.compare.results import ModeResult, Run, bounds

__all__ = [
    "Experiment",
    "ModeResult",
    "Run",
    "bounds",
    "plot",
    "prepare_path",
    "run_experiment",
    "space_needed",
]
