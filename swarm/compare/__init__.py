"""``swarm compare``'s experiment: the same file to N downloaders from one central server and
from a swarm, each part its own ``swarm`` process, timed and checked, beside the Kurose and
Ross bounds.

:mod:`~swarm.compare.experiment` runs it, :mod:`~swarm.compare.children` starts the processes
and reads their status lines (:mod:`swarm.status`), :mod:`~swarm.compare.results` holds the
times and the bounds, :mod:`~swarm.compare.chart` draws them.
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
