"""The piece picker's cost per new piece, new against old, at 1,024 and 65,536 pieces.

    python bench/picker/run.py [--runs 3] [--old-prefix 1024] [--sizes 1024,65536]

A download is driven as swarm.requests drives it: each peer in turn is asked for up to 8
blocks (64 KiB pieces of 4 blocks), which arrive at once; each full piece is verified, and
after each verified piece every peer still in play is asked `interesting` (lose_interest).
Peers are counted into the picker first (peer_bitfield, not timed), with the very lists they
pick with, as swarm.requests counts them. Scenarios:

  seed          one seed peer (the common case)
  sparse        8 peers, no seed: each piece with 1 + Binomial(7, 1/4) of them
  seed+sparse   the 8 sparse peers and one seed (pieces only the seed has sit in bucket 0)

The old picker is the one before issue 14 item 2 (`git show 177baf7:swarm/picker.py`, loaded
into a temporary module). Its cost per new piece is linear in the piece count, so at 65,536
pieces it runs only the first --old-prefix pieces of the download; the new one is timed on the
same prefix (for the ratio) and on the whole download. Figures are microseconds per new piece
(the whole loop's time over the pieces it completed, garbage collection off while timed, as
timeit does), best of --runs. Exit status 1 if the new
picker's whole-download cost at the largest size is over 2x that at the smallest.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from swarm import picker as new_picker  # noqa: E402

OLD_COMMIT = "177baf7"
BLOCK = 16 * 1024
PIECE = 4 * BLOCK
PER_PICK = 8
TARGET = 2.0


def load_old() -> ModuleType:
    src = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:swarm/picker.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_picker.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_picker", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_picker"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def scenario(name: str, n: int) -> list[list[bool]]:
    """Each peer's pieces, the same for every picker."""
    rng = random.Random(n)
    sparse = [[False] * n for _ in range(8)]
    for i in range(n):
        holders = {rng.randrange(8)} | {k for k in range(8) if rng.random() < 0.25}
        for k in holders:
            sparse[k][i] = True
    if name == "seed":
        return [[True] * n]
    if name == "sparse":
        return sparse
    return [[True] * n, *sparse]


def download(module: ModuleType, n: int, peers: list[list[bool]], limit: int) -> float:
    """Seconds per new piece for the first *limit* pieces of a download."""
    has = [list(h) for h in peers]  # fresh lists, counted as swarm.requests counts them
    p: Any = module.PiecePicker(n, PIECE, n * PIECE, rng=random.Random(1))
    for h in has:
        p.peer_bitfield(h)
    active = list(range(len(has)))
    gc.collect()
    gc.disable()  # as timeit does: a collection's pause lands on whichever call allocates
    start = time.perf_counter()
    while active and p.num_have < limit:
        progress = False
        for k in list(active):
            blocks = p.pick(k, has[k], PER_PICK)
            if not blocks:
                if not p.interesting(has[k]):
                    active.remove(k)
                continue
            progress = True
            for index, begin, _ in blocks:
                p.block_received(k, index, begin)
                if p.piece_full(index):
                    p.start_verify(index)
                    p.piece_verified(index)
                    for j in active:
                        p.interesting(has[j])
        if not progress:
            break
    seconds = time.perf_counter() - start
    gc.enable()
    assert p.num_have >= min(limit, n), (p.num_have, limit)
    return seconds / p.num_have


def best(runs: int, *args: Any) -> float:
    return min(download(*args) for _ in range(runs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--old-prefix", type=int, default=1024)
    ap.add_argument("--sizes", default="1024,65536")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    old = load_old()
    print(f"python {sys.version.split()[0]}; us per new piece, best of {args.runs}")
    print(f"{'scenario':<12} {'pieces':>7} {'timed':>7} {'old':>9} {'new':>9} {'old/new':>8}")
    whole: dict[tuple[str, int], float] = {}
    for name in ("seed", "sparse", "seed+sparse"):
        for n in sizes:
            peers = scenario(name, n)
            prefix = min(n, args.old_prefix)
            old_us = best(args.runs if prefix == n else 1, old, n, peers, prefix) * 1e6
            new_us = best(args.runs, new_picker, n, peers, prefix) * 1e6
            ratio = old_us / new_us
            print(f"{name:<12} {n:>7} {prefix:>7} {old_us:>9.1f} {new_us:>9.1f} {ratio:>7.1f}x")
            whole[name, n] = new_us
            if prefix < n:
                whole[name, n] = best(args.runs, new_picker, n, peers, n) * 1e6
                print(f"{'':<12} {'':>7} {n:>7} {'':>9} {whole[name, n]:>9.1f}")
    missed = False
    for name in ("seed", "sparse", "seed+sparse"):
        growth = whole[name, sizes[-1]] / whole[name, sizes[0]]
        ok = growth <= TARGET
        missed |= not ok
        print(
            f"new, whole download, {name}: {sizes[-1]} vs {sizes[0]} pieces "
            f"{growth:.2f}x per new piece (target <= {TARGET}x) {'ok' if ok else 'MISSED'}"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
