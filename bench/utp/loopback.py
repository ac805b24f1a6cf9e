"""uTP loopback throughput: one sender process and one receiver process on 127.0.0.1, each a
swarm.utp_shell.UtpEndpoint; prints MiB/s and each side's CPU seconds per GiB.

    python bench/utp/loopback.py               # 64 MiB, asyncio's default loop
    python bench/utp/loopback.py --size 256 --uvloop

Not run by the tests. The sender writes 1 MiB at a time while the transport is not paused
(as the peer connection's upload loop does); the figures are taken over the transfer only.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
from multiprocessing.connection import Connection

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from swarm.utp_shell import UtpEndpoint  # noqa: E402

CHUNK = 1 << 20


def _loop(use_uvloop: bool) -> None:
    if use_uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


class Sink(asyncio.Protocol):
    def __init__(self, size: int, done: asyncio.Future[tuple[float, float]]) -> None:
        self.size, self.got, self.done = size, 0, done
        self.started = (0.0, 0.0)

    def data_received(self, data: bytes) -> None:
        if self.got == 0:
            self.started = (time.perf_counter(), time.process_time())
        self.got += len(data)
        if self.got >= self.size and not self.done.done():
            wall, cpu = time.perf_counter(), time.process_time()
            self.done.set_result((wall - self.started[0], cpu - self.started[1]))


def receiver(size: int, use_uvloop: bool, pipe: Connection) -> None:
    _loop(use_uvloop)

    async def main() -> None:
        done: asyncio.Future[tuple[float, float]] = asyncio.get_running_loop().create_future()
        ep = UtpEndpoint(accept=lambda: Sink(size, done))
        await ep.start("127.0.0.1", 0)
        pipe.send(ep.address)
        pipe.send(await done)
        await asyncio.sleep(0.5)
        await ep.stop()

    asyncio.run(main())


class Source(asyncio.Protocol):
    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


async def send(addr: tuple[str, int], size: int) -> tuple[float, float]:
    ep = UtpEndpoint()
    await ep.start("127.0.0.1", 0)
    tr, proto = await ep.connect(Source, addr)
    assert isinstance(proto, Source)
    tr.set_write_buffer_limits(high=4 << 20, low=1 << 20)
    block = os.urandom(CHUNK)
    wall, cpu = time.perf_counter(), time.process_time()
    sent = 0
    while sent < size:
        await proto.writable.wait()
        tr.write(block[: min(CHUNK, size - sent)])
        sent += min(CHUNK, size - sent)
    while tr.get_write_buffer_size():
        await asyncio.sleep(0.01)
    result = (time.perf_counter() - wall, time.process_time() - cpu)
    await ep.stop()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="MiB to send (default 64)")
    ap.add_argument("--uvloop", action="store_true", help="run both sides on uvloop")
    args = ap.parse_args()
    size = args.size << 20
    ours, theirs = mp.Pipe()
    child = mp.get_context("fork").Process(target=receiver, args=(size, args.uvloop, theirs))
    child.start()
    try:
        addr = ours.recv()
        _loop(args.uvloop)
        s_wall, s_cpu = asyncio.run(send(addr, size))
        if not ours.poll(60):
            sys.exit("error: the receiver did not finish in 60 s")
        r_wall, r_cpu = ours.recv()
    finally:
        child.join(10)
        if child.is_alive():
            child.terminate()
    gib = size / (1 << 30)
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"uTP loopback, {args.size} MiB, {loop}")
    print(f"  throughput        {args.size / r_wall:8.1f} MiB/s  ({r_wall:.2f} s at the receiver)")
    print(f"  sender CPU        {s_cpu / gib:8.1f} s/GiB")
    print(f"  receiver CPU      {r_cpu / gib:8.1f} s/GiB")


if __name__ == "__main__":
    main()
