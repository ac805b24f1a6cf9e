"""uTP against libtorrent, both ways, on 127.0.0.1: a check of the wire format, not a test.

    python bench/utp/lt_interop.py

Needs Debian's python3-libtorrent under /usr/bin/python3. A libtorrent session with TCP off
(uTP only) seeds a 4 MiB torrent; swarm.utp_shell dials it over uTP, exchanges BitTorrent
handshakes, asks for every block of every piece and checks each piece's SHA-1 (data from
libtorrent to us). Then libtorrent dials our endpoint over uTP (``connect_peer``); we take
its handshake and serve it the pieces it asks for until it has the whole torrent (data from
us to libtorrent). Then, if transmission-cli is installed, Transmission 3.00 (libutp) seeds
and we dial it over uTP as we dialed libtorrent. Prints what happened and the times; exit 1
if anything failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from swarm.utp_shell import UtpEndpoint  # noqa: E402

LT = r"""
import sys, time, libtorrent as lt
mode, torrent, folder = sys.argv[1:4]
s = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_outgoing_tcp": False,
    "enable_incoming_tcp": False, "enable_outgoing_utp": True, "enable_incoming_utp": True,
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "allow_multiple_connections_per_ip": True, "out_enc_policy": 2, "in_enc_policy": 1})
if mode == "create":
    fs = lt.file_storage(); lt.add_files(fs, folder + "/data.bin")
    t = lt.create_torrent(fs, 262144, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(t, folder)
    open(torrent, "wb").write(lt.bencode(t.generate())); sys.exit()
h = s.add_torrent({"ti": lt.torrent_info(torrent), "save_path": folder})
if mode == "seed":
    h.force_recheck()
    while not h.status().is_seeding: time.sleep(0.05)
    print("port", s.listen_port(), flush=True)
    while True: time.sleep(1)
host, port = sys.argv[4].split(":")
h.connect_peer((host, int(port)))
end = time.time() + 60
while not h.status().is_seeding:
    if time.time() > end: print("timed out", h.status().progress, flush=True); sys.exit(1)
    if h.status().num_peers == 0: h.connect_peer((host, int(port)))
    time.sleep(0.1)
print("done", flush=True)
"""

PIECE = 262144
BLOCK = 16384


def handshake(info_hash: bytes) -> bytes:
    return b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-SW0001-utpinterop00"


def msg(mid: int, body: bytes = b"") -> bytes:
    return struct.pack(">IB", len(body) + 1, mid) + body


class Wire(asyncio.Protocol):
    """Collects the bytes; the coroutine reads whole messages from them."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.more = asyncio.Event()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.more.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.more.set()

    async def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.lost:
                raise ConnectionError("closed")
            self.more.clear()
            await self.more.wait()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def message(self) -> tuple[int, bytes]:
        while True:
            (length,) = struct.unpack(">I", await self.take(4))
            if length:
                body = await self.take(length)
                return body[0], body[1:]


async def download_from_lt(addr: tuple[str, int], torrent: Path, data: bytes) -> float:
    ep = UtpEndpoint()
    await ep.start("127.0.0.1", 0)
    try:
        info_hash, hashes, length = meta(torrent)
        start = time.perf_counter()
        tr, proto = await ep.connect(Wire, addr, timeout=5.0)
        assert isinstance(proto, Wire)
        tr.write(handshake(info_hash))
        reply = await proto.take(68)
        assert reply[28:48] == info_hash, "libtorrent answered another info-hash"
        tr.write(msg(2))  # interested
        while (await proto.message())[0] != 1:  # until unchoke
            pass
        got = bytearray(length)
        for index in range(len(hashes)):  # every block asked at once: 256 requests
            size = min(PIECE, length - index * PIECE)
            for off in range(0, size, BLOCK):
                tr.write(msg(6, struct.pack(">III", index, off, min(BLOCK, size - off))))
        need = -(-length // BLOCK)
        while need:
            mid, body = await proto.message()
            if mid == 7:
                i, off = struct.unpack(">II", body[:8])
                got[i * PIECE + off : i * PIECE + off + len(body) - 8] = body[8:]
                need -= 1
        for index, digest in enumerate(hashes):
            piece = got[index * PIECE : (index + 1) * PIECE]
            assert hashlib.sha1(piece).digest() == digest, f"piece {index} is wrong"
        assert bytes(got) == data
        tr.close()
        return time.perf_counter() - start
    finally:
        await ep.stop()


def meta(torrent: Path) -> tuple[bytes, list[bytes], int]:
    from swarm import bencoding

    top = bencoding.decode(torrent.read_bytes())
    info = top[b"info"]
    raw = bencoding.encode(info)
    pieces = info[b"pieces"]
    return (
        hashlib.sha1(raw).digest(),
        [pieces[i : i + 20] for i in range(0, len(pieces), 20)],
        info[b"length"],
    )


async def upload_to_lt(folder: Path, torrent: Path, data: bytes) -> float:
    info_hash, hashes, length = meta(torrent)
    served = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def serve(proto: Wire) -> None:
        assert proto.transport is not None
        tr = proto.transport
        hs = await proto.take(68)
        assert hs[28:48] == info_hash
        tr.write(handshake(info_hash))
        nbits = -(-len(hashes) // 8) * 8
        tr.write(
            msg(
                5,
                int("1" * len(hashes) + "0" * (nbits - len(hashes)), 2).to_bytes(nbits // 8, "big"),
            )
        )
        tr.write(msg(1))  # unchoke
        try:
            while True:
                mid, body = await proto.message()
                if mid == 6:
                    i, off, ln = struct.unpack(">III", body)
                    at = i * PIECE + off
                    tr.write(msg(7, body[:8] + data[at : at + ln]))
        except ConnectionError:
            served.set()

    def accept() -> Wire:
        w = Wire()
        orig = w.connection_made

        def made(t: asyncio.BaseTransport) -> None:
            orig(t)
            tasks.append(asyncio.get_running_loop().create_task(serve(w)))

        w.connection_made = made  # type: ignore[method-assign]
        return w

    ep = UtpEndpoint(accept=accept)
    await ep.start("127.0.0.1", 0)
    dl = folder / "dl"
    dl.mkdir()
    try:
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "/usr/bin/python3",
            "-c",
            LT,
            "download",
            str(torrent),
            str(dl),
            f"{ep.address[0]}:{ep.address[1]}",
            stdout=subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 90)
        took = time.perf_counter() - start
        assert out.strip() == b"done", out
        assert (dl / "data.bin").read_bytes() == data
        return took
    finally:
        for t in tasks:
            t.cancel()
        await ep.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = os.urandom(4 << 20)
        (folder / "data.bin").write_bytes(data)
        torrent = folder / "t.torrent"
        subprocess.run(["/usr/bin/python3", "-c", LT, "create", str(torrent), tmp], check=True)
        seed = subprocess.Popen(
            ["/usr/bin/python3", "-c", LT, "seed", str(torrent), tmp], stdout=subprocess.PIPE
        )
        try:
            assert seed.stdout is not None
            line = seed.stdout.readline().split()
            port = int(line[1])
            took = asyncio.run(download_from_lt(("127.0.0.1", port), torrent, data))
            print(f"libtorrent -> swarm uTP: 4 MiB, every piece's SHA-1 right, {took:.2f} s")
        finally:
            seed.terminate()
            seed.wait(10)
        took = asyncio.run(upload_to_lt(folder, torrent, data))
        print(f"swarm uTP -> libtorrent: 4 MiB, libtorrent has it all, {took:.2f} s")
        if shutil.which("transmission-cli"):
            took = from_transmission(folder, torrent, data)
            print(f"Transmission -> swarm uTP: 4 MiB, every piece's SHA-1 right, {took:.2f} s")


def from_transmission(folder: Path, torrent: Path, data: bytes) -> float:
    """Transmission 3.00 (libutp) seeds; we dial it over uTP (it unchokes at its next
    rechoke, up to 10 s, which the time includes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (folder / "cfg").mkdir()
    args = ["-g", str(folder / "cfg"), "-w", str(folder), "-p", str(port), "-et", "-M"]
    proc = subprocess.Popen(
        ["transmission-cli", *args, str(torrent)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 30
        while True:  # until it has checked the data and listens
            try:
                return asyncio.run(download_from_lt(("127.0.0.1", port), torrent, data))
            except (ConnectionError, TimeoutError):
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
