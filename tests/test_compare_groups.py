"""Downloaders per process in ``swarm compare`` (swarm/compare/experiment.py): the default K
rule, the --peers limit and the piece length that follows, without processes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from swarm.cli.compare import MAX_PEERS, compare_command
from swarm.compare.experiment import piece_length
from swarm.compare.options import peer_counts
from swarm.compare.settings import MAX_PEERS as EXPERIMENT_MAX_PEERS
from swarm.compare.settings import Experiment, default_per_process, lab_busy
from swarm.errors import UsageError


@pytest.mark.parametrize(
    ("n", "cores", "k"),
    [
        (1, 2, 1),
        (8, 2, 1),
        (16, 2, 1),  # up to 8 per core: a process each, as before
        (17, 2, 6),  # beyond: 3 processes per 2 cores
        (32, 2, 11),
        (64, 2, 22),
        (100, 2, 34),
        (200, 2, 67),
        (8, 1, 1),
        (9, 1, 5),  # 2 processes at least
        (100, 8, 9),
    ],
)
def test_default_peers_per_process(n: int, cores: int, k: int) -> None:
    assert default_per_process(n, cores) == k


def test_an_experiment_groups_by_the_rule_unless_told_and_never_above_n(tmp_path: object) -> None:
    exp = Experiment(tmp_path, [4, 100], 1, 1)  # type: ignore[arg-type]
    assert exp.k_for(100) == default_per_process(100)
    exp.per_process = 6
    assert exp.k_for(100) == 6 and exp.k_for(4) == 4


def test_peers_up_to_the_stated_limit() -> None:
    assert MAX_PEERS == EXPERIMENT_MAX_PEERS == 200
    assert peer_counts("100,200") == [100, 200]
    with pytest.raises(UsageError, match="between 1 and 200"):
        peer_counts("201")


def test_help_states_the_limit_and_the_k_rule() -> None:
    out = CliRunner().invoke(compare_command, ["--help"], terminal_width=200).output
    assert "N at most 200" in out
    assert "--peers-per-process" in out and "3 processes per 2 cores" in out


def test_the_piece_length_is_create_s_unless_shared_processes_would_bear_too_many_pieces() -> None:
    """Shared: the shortest from create's at which N x u is at most 2048 pieces a second, up to
    64 KiB (longer pieces cost more in hops than they save in CPU)."""
    mib = 2**20
    assert piece_length(4 * mib, 1, 100 * mib) == 16 * 1024  # a process each: create's length
    assert piece_length(4 * mib, 25, 100 * mib) == 64 * 1024  # N = 100 at 1 MiB/s: 64 KiB
    assert piece_length(4 * mib, 5, 17 * mib) == 16 * 1024  # the smallest grouped default N
    assert piece_length(4 * mib, 8, 32 * mib) == 16 * 1024  # N = 32: 2048 pieces a second
    assert piece_length(4 * mib, 16, 64 * mib) == 32 * 1024  # N = 64: 4096 of 16 KiB, too many
    assert piece_length(4 * mib, 50, 200 * mib) == 64 * 1024  # N = 200: no longer than 64 KiB
    # The texts' scenario: 100 peers at 100 kB/s pass 10 MB/s, 610 pieces of 16 KiB a second.
    assert piece_length(10**7, 25, 100 * 100_000) == 16 * 1024
    assert piece_length(2**30, 25, 100 * mib) == mib  # create's, when it is longer anyway


def test_the_lab_says_when_a_process_per_downloader_is_more_than_the_cores_carry() -> None:
    # In the lab every downloader is a process (a kernel cap is a namespace's): N = 64 took
    # 2.0x of the bound on 2 cores, 1.14x without the lab; the run says why, in one line.
    assert lab_busy(16, cores=2) is None
    note = lab_busy(64, cores=2)
    assert note is not None and "64 downloaders" in note and "past 16" in note
    assert "\n" not in note
    assert lab_busy(64, cores=8) is None
