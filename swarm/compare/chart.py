"""The chart of ``swarm compare --plot``: time against N for both modes and both bounds."""

from __future__ import annotations

from pathlib import Path

from swarm.compare.results import Run


def plot(runs: list[Run], out: Path, file_size: int, server_rate: int) -> None:
    """Time against N for both modes and both bounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r.peers for r in runs]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot(
        ns,
        [r.central.total for r in runs],
        "o-",
        color="tab:red",
        label="central server (measured)",
    )
    ax.plot(
        ns,
        [r.bound_central for r in runs],
        "x--",
        color="tab:red",
        alpha=0.6,
        label="central bound D_cs",
    )
    ax.plot(ns, [r.swarm.total for r in runs], "o-", color="tab:blue", label="swarm (measured)")
    ax.plot(
        ns,
        [r.bound_swarm for r in runs],
        "x--",
        color="tab:blue",
        alpha=0.6,
        label="swarm bound D_p2p",
    )
    ax.set_xlabel("downloaders N")
    ax.set_ylabel("time until the last copy is complete (s)")
    mib = file_size / 2**20
    ax.set_title(f"{mib:.1f} MiB to N peers, server upload {server_rate / 2**20:.2f} MiB/s")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_xticks(ns)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
