"""A hostile peer against the engine over real sockets on 127.0.0.1 (issue 7, items 1 and 6).

The hostile side is plain asyncio streams writing raw bytes, so it can send anything. Every
protocol violation must close that one connection (the hostile socket reads EOF or a reset,
within a few seconds, so not by some idle timer) while the same process goes on serving
everyone else: a bystander connected before the attack still gets its blocks, and an honest
leecher still downloads the whole file. Both sides are attacked: our seed receiving a hostile
leecher's messages, and our leecher (a Session fetching) connected to a hostile "seed".
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
import tracemalloc
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from swarm import metainfo, peer, wire
from swarm.create import create_torrent
from swarm.metainfo import Torrent
from swarm.session import Session

PIECE_LENGTH = 32 * 1024
NUM_PIECES = 14  # not a multiple of 8: the bitfield has 2 spare bits
SIZE = PIECE_LENGTH * (NUM_PIECES - 1) + 5000  # the last piece is short
LAST = NUM_PIECES - 1
BLOCK = wire.BLOCK_SIZE
CLOSE_TIMEOUT = 5.0  # far below every timer of the engine (handshake 10 s, idle 120 s)
HOSTILE_ID = b"-XX0001-hostile-peer"
FAR_BEHIND = 3 * peer.MAX_QUEUED_REQUESTS


# -- set-up ------------------------------------------------------------------------------------


class Files:
    """The data on disk and its torrent."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.src = tmp_path / "seed" / "data.bin"
        self.src.parent.mkdir(parents=True)
        self.data = random.Random(7).randbytes(SIZE)
        self.src.write_bytes(self.data)
        self.torrent: Torrent = metainfo.parse(create_torrent(self.src, piece_length=PIECE_LENGTH))
        assert self.torrent.num_pieces == NUM_PIECES
        self._outs = 0

    def block(self, index: int, begin: int, length: int) -> bytes:
        start = index * PIECE_LENGTH + begin
        return self.data[start : start + length]

    def out_dir(self) -> Path:
        self._outs += 1
        return self.tmp_path / f"out{self._outs}"


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


async def poll(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    """Wait for *predicate* with a deadline, checking often (no blind sleeps)."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


async def honest_download(files: Files, port: int, timeout: float = 20.0) -> None:
    """A fresh leecher Session downloads the whole file from the seed at *port*."""
    out = files.out_dir()
    async with Session(host="127.0.0.1") as leecher:
        t = await leecher.add(files.torrent, out)
        t.add_peers([("127.0.0.1", port)])
        async with asyncio.timeout(timeout):
            await t.complete.wait()
        assert t.failed is None
    assert (out / "data.bin").read_bytes() == files.data


def handshake_bytes(info_hash: bytes, *, fast: bool = True, peer_id: bytes = HOSTILE_ID) -> bytes:
    return wire.Handshake(wire.make_reserved(fast=fast, extended=True), info_hash, peer_id).encode()


def msg(*messages: Any) -> bytes:
    return b"".join(wire.encode(m) for m in messages)


def raw(msg_id: int, payload: bytes = b"", length: int | None = None) -> bytes:
    """A message with any id, payload and (possibly lying) length prefix."""
    n = 1 + len(payload) if length is None else length
    return struct.pack(">IB", n, msg_id) + payload


def bitfield(bits: bytes) -> bytes:
    return raw(wire.MsgId.BITFIELD, bits)


ALL_BITS = wire.bitfield_from_bools([True] * NUM_PIECES)  # b"\xff\xfc"


class RawPeer:
    """One plain TCP connection that writes whatever bytes it is told and reads with a parser
    of its own (what the engine sends is assumed well formed)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = wire.Parser(expect_handshake=False, num_pieces=NUM_PIECES, fast=True)
        self.inbox: list[Any] = []

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int | None = None) -> RawPeer:
        sock = None
        if rcvbuf is not None:
            # A small receive window, so that a peer that does not read is seen at once.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=rcvbuf)
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def handshake(
        self, info_hash: bytes, *, fast: bool = True, peer_id: bytes = HOSTILE_ID
    ) -> wire.Handshake:
        self.send(handshake_bytes(info_hash, fast=fast, peer_id=peer_id))
        async with asyncio.timeout(CLOSE_TIMEOUT):
            return wire.Handshake.decode(await self.reader.readexactly(wire.HANDSHAKE_LEN))

    async def receive(self, *kinds: type, timeout: float = CLOSE_TIMEOUT) -> Any:
        """The next message of one of *kinds* from the engine (others stay in the inbox)."""
        async with asyncio.timeout(timeout):
            while True:
                for i, m in enumerate(self.inbox):
                    if type(m) in kinds:
                        return self.inbox.pop(i)
                data = await self.reader.read(1 << 16)
                if not data:
                    names = ", ".join(k.__name__ for k in kinds)
                    pytest.fail(f"the engine closed the connection; waiting for {names}")
                self.inbox += self.parser.feed(data)

    async def unchoked(self) -> None:
        """Say we are interested and wait until the engine unchokes us."""
        self.send(msg(wire.INTERESTED))
        await self.receive(wire.Unchoke)

    async def fetch(self, files: Files, index: int, begin: int, length: int) -> None:
        """Request one block and check the bytes that come back. A seed that has not sent
        every piece yet may turn a second asker away once per piece (BEP 6 reject, see
        TorrentController.defer_to_swarm); an honest peer asks again."""
        for _ in range(2):
            self.send(msg(wire.Request(index, begin, length)))
            got = await self.receive(wire.Piece, wire.Reject)
            assert (got.index, got.begin) == (index, begin)
            if type(got) is wire.Piece:
                assert got.block == files.block(index, begin, length)
                return
        pytest.fail(f"the engine rejected the block ({index}, {begin}) twice")

    async def expect_closed(self, timeout: float = CLOSE_TIMEOUT) -> bytes:
        """Read until the engine closes (EOF or reset); fail if it keeps the connection open.
        Returns what was read (the engine's handshake and messages, if any)."""
        got = bytearray()
        try:
            async with asyncio.timeout(timeout):
                while data := await self.reader.read(1 << 16):
                    got += data
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"the engine kept the connection open for {timeout} s")
        return bytes(got)

    def close(self) -> None:
        self.writer.close()


def engine_peer(session: Session, peer_id: bytes = HOSTILE_ID) -> peer.PeerConnection | None:
    """The engine's side of the connection from the peer with *peer_id*, if it is open."""
    for t in session.torrents.values():
        for p in t.peers:
            if p.peer_id == peer_id and not p.closed:
                return p
    return None


# -- our seed against a hostile leecher ------------------------------------------------------


def ext(ext_id: int, payload: bytes) -> bytes:
    return msg(wire.Extended(ext_id, payload))


EXT_HS = ext(0, wire.ExtendedHandshake(m={"ut_metadata": 2, "ut_pex": 1}).encode())
METADATA_ASK = b"d8:msg_typei0e5:piecei0ee"
PEX_ONE = b"d5:added6:\x7f\x00\x00\x02\x1a\xe1e"  # 127.0.0.2:6881

INFO_HASH_PLACEHOLDER = b"\x00" * 20  # replaced by the torrent's info_hash in the tests

# (id, what the hostile leecher sends instead of / after a valid handshake, whether our
# handshake may come back first). "HS" is replaced by a valid handshake.
SEED_CASES: list[tuple[str, Callable[[bytes], bytes], bool]] = [
    # Handshakes.
    ("pstrlen-18", lambda ih: b"\x12" + handshake_bytes(ih)[1:], False),
    ("pstrlen-0", lambda ih: b"\x00" * 68, False),
    ("protocol-string", lambda ih: handshake_bytes(ih).replace(b"protocol", b"protocoX"), False),
    ("http-request", lambda ih: b"GET /announce?info_hash=x HTTP/1.1\r\nHost: a\r\n\r\n", False),
    ("unknown-info-hash", lambda ih: handshake_bytes(bytes(20)), False),
    # Length prefixes: 2**31 and one byte over each id's bound, sent without the body, so
    # the close comes before any of the announced bytes could have arrived.
    ("prefix-2**31", lambda ih: struct.pack(">I", 2**31), True),
    ("prefix-2**32-1", lambda ih: struct.pack(">I", 2**32 - 1), True),
    ("extended-over-1MiB", lambda ih: raw(20, b"\x00", length=wire.MAX_EXTENDED + 1), True),
    ("piece-over-16KiB", lambda ih: raw(7, bytes(8), length=9 + BLOCK + 1), True),
    # Ids and lengths.
    ("unknown-id-99", lambda ih: raw(99), True),
    ("unknown-id-10", lambda ih: raw(10, bytes(4)), True),
    ("have-3-bytes", lambda ih: raw(4, b"\x00\x00\x01"), True),
    ("have-6-bytes", lambda ih: raw(4, bytes(5)), True),
    ("choke-with-body", lambda ih: raw(0, b"\x00"), True),
    ("request-12-bytes", lambda ih: raw(6, bytes(12)), True),
    ("port-4-bytes", lambda ih: raw(9, bytes(4)), True),
    # Requests out of range or too large.
    ("request-index-past-end", lambda ih: msg(wire.Request(NUM_PIECES, 0, BLOCK)), True),
    ("request-index-2**32-1", lambda ih: msg(wire.Request(2**32 - 1, 0, BLOCK)), True),
    ("request-past-piece-end", lambda ih: msg(wire.Request(0, PIECE_LENGTH - 100, 200)), True),
    ("request-past-last-piece", lambda ih: msg(wire.Request(LAST, 4096, 4096)), True),
    ("request-begin-2**32-1", lambda ih: msg(wire.Request(0, 2**32 - 1, 1)), True),
    ("request-16KiB+1", lambda ih: msg(wire.Request(0, 0, BLOCK + 1)), True),
    ("request-128KiB", lambda ih: msg(wire.Request(0, 0, 128 * 1024)), True),
    ("request-0-bytes", lambda ih: msg(wire.Request(0, 0, 0)), True),
    ("cancel-index-past-end", lambda ih: msg(wire.Cancel(NUM_PIECES, 0, BLOCK)), True),
    # Bitfields.
    ("bitfield-short", lambda ih: bitfield(b"\xff"), True),
    ("bitfield-long", lambda ih: bitfield(b"\xff\xfc\x00"), True),
    ("bitfield-empty", lambda ih: bitfield(b""), True),
    ("bitfield-spare-bit", lambda ih: bitfield(b"\x00\x01"), True),
    ("bitfield-spare-bits", lambda ih: bitfield(b"\xff\xff"), True),
    (
        "late-bitfield-spare-bits",
        lambda ih: msg(wire.INTERESTED, wire.Have(0)) + bitfield(b"\x80\x03"),
        True,
    ),
    # have.
    ("have-past-end", lambda ih: msg(wire.Have(NUM_PIECES)), True),
    ("have-2**32-1", lambda ih: msg(wire.Have(2**32 - 1)), True),
    # Blocks nobody asked for (a seed never asks).
    ("unsolicited-piece", lambda ih: msg(wire.Piece(0, 0, bytes(BLOCK))), True),
    ("unsolicited-short-piece", lambda ih: msg(wire.Piece(3, 5, b"x")), True),
    ("piece-index-past-end", lambda ih: msg(wire.Piece(NUM_PIECES, 0, b"x")), True),
    # Extension messages (BEP 10, 9, 11).
    ("extended-handshake-not-a-dict", lambda ih: msg(wire.Extended(0, b"i3e")), True),
    ("extended-handshake-not-bencoding", lambda ih: msg(wire.Extended(0, b"d1:m")), True),
    ("ut_metadata-malformed", lambda ih: EXT_HS + ext(wire.UT_METADATA_ID, b"d8:msg_type"), True),
    (
        "ut_metadata-not-offered",
        lambda ih: msg(wire.Extended(0, b"d1:mdee")) + ext(wire.UT_METADATA_ID, METADATA_ASK),
        True,
    ),
    ("pex-garbage-added", lambda ih: EXT_HS + ext(wire.UT_PEX_ID, b"d5:added3:abce"), True),
    ("pex-added-not-a-string", lambda ih: EXT_HS + ext(wire.UT_PEX_ID, b"d5:addedi1ee"), True),
    ("pex-flood", lambda ih: EXT_HS + ext(wire.UT_PEX_ID, PEX_ONE) * 10, True),
]
# The same fast-extension messages are errors from a peer that did not set the fast bit.
NO_FAST_CASES: list[tuple[str, bytes]] = [
    ("have-all", msg(wire.HAVE_ALL)),
    ("have-none", msg(wire.HAVE_NONE)),
    ("reject", msg(wire.Reject(0, 0, BLOCK))),
    ("allowed-fast", msg(wire.AllowedFast(0))),
    ("suggest", msg(wire.Suggest(0))),
]


async def _seed_with_bystander(files: Files, session: Session) -> RawPeer:
    t = await session.add(files.torrent, files.src.parent, seed=True)
    # The raw bystander takes blocks but never shares them: with initial seeding on, the
    # honest leecher later would be turned away once for those pieces and wait to re-ask.
    t.requests.seeding.reset(done=True)
    bystander = await RawPeer.connect(session.port)
    await bystander.handshake(files.torrent.info_hash, peer_id=b"-XX0001-bystander-00")
    await bystander.unchoked()
    return bystander


async def _still_serving(files: Files, session: Session, bystander: RawPeer) -> None:
    """The bystander's connection still works, and a new leecher gets the whole file."""
    await bystander.fetch(files, 1, BLOCK, BLOCK)
    await bystander.fetch(files, LAST, 0, 5000)
    await honest_download(files, session.port)


@pytest.mark.parametrize(
    ("attack", "handshake_back"),
    [pytest.param(make, back, id=name) for name, make, back in SEED_CASES],
)
def test_seed_closes_a_hostile_leecher_and_serves_on(
    files: Files, attack: Callable[[bytes], bytes], handshake_back: bool
) -> None:
    info_hash = files.torrent.info_hash

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            bystander = await _seed_with_bystander(files, seeder)
            hostile = await RawPeer.connect(seeder.port)
            if handshake_back:
                await hostile.handshake(info_hash)
                await poll(lambda: engine_peer(seeder), CLOSE_TIMEOUT, "the hostile peer's turn")
            hostile.send(attack(info_hash))
            got = await hostile.expect_closed()
            if not handshake_back:
                assert got == b"", "the engine answered a bad handshake"
            assert engine_peer(seeder) is None
            assert len(seeder.connections) == 1  # the bystander alone
            await _still_serving(files, seeder, bystander)

    asyncio.run(main())


@pytest.mark.parametrize(("attack"), [pytest.param(b, id=n) for n, b in NO_FAST_CASES])
def test_seed_closes_fast_messages_without_the_fast_bit(files: Files, attack: bytes) -> None:
    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            bystander = await _seed_with_bystander(files, seeder)
            hostile = await RawPeer.connect(seeder.port)
            await hostile.handshake(files.torrent.info_hash, fast=False)
            hostile.send(attack)
            await hostile.expect_closed()
            assert engine_peer(seeder) is None
            await _still_serving(files, seeder, bystander)

    asyncio.run(main())


def test_handshake_in_one_segment_with_an_oversize_prefix(files: Files) -> None:
    """The bytes after the handshake in the same segment are checked like any other."""

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            bystander = await _seed_with_bystander(files, seeder)
            hostile = await RawPeer.connect(seeder.port)
            hostile.send(handshake_bytes(files.torrent.info_hash) + struct.pack(">I", 2**31))
            got = await hostile.expect_closed()
            assert got.startswith(wire.PROTOCOL)  # our handshake, then the close
            await _still_serving(files, seeder, bystander)

    asyncio.run(main())


def test_oversize_prefix_is_refused_without_allocating_it(files: Files) -> None:
    """A 2 GiB length prefix: the connection closes on the 4 bytes of the prefix, and the
    process never holds more than a small amount of extra memory for it."""

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            bystander = await _seed_with_bystander(files, seeder)
            hostile = await RawPeer.connect(seeder.port)
            await hostile.handshake(files.torrent.info_hash)
            await poll(lambda: engine_peer(seeder), CLOSE_TIMEOUT, "the hostile peer's turn")
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                started = time.monotonic()
                hostile.send(struct.pack(">I", 2**31) + bytes(1000))
                await hostile.expect_closed()
                elapsed = time.monotonic() - started
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak - base < 1 << 20
            assert elapsed < CLOSE_TIMEOUT
            await _still_serving(files, seeder, bystander)

    asyncio.run(main())


def test_a_late_bitfield_is_accepted_as_aria2_sends_it(files: Files) -> None:
    """BEP 3 wants the bitfield first, but aria2 sends a whole bitfield mid-connection in
    place of 20 or more 'have' messages (DefaultBtInteractive::checkHave), so a well-formed
    late bitfield replaces the old one instead of closing the connection."""

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            await seeder.add(files.torrent, files.src.parent, seed=True)
            hostile = await RawPeer.connect(seeder.port)
            await hostile.handshake(files.torrent.info_hash)
            hostile.send(msg(wire.HAVE_NONE, wire.Have(0)))
            await hostile.unchoked()
            hostile.send(
                bitfield(wire.bitfield_from_bools([i % 2 == 0 for i in range(NUM_PIECES)]))
            )
            await hostile.fetch(files, 2, 0, BLOCK)
            conn = engine_peer(seeder)
            assert conn is not None
            assert conn.state.peer_has == [i % 2 == 0 for i in range(NUM_PIECES)]

    asyncio.run(main())


def test_handshake_that_stalls_is_closed_after_the_handshake_timeout(
    files: Files,
) -> None:
    async def main() -> None:
        async with Session(host="127.0.0.1", handshake_timeout=0.5) as seeder:
            bystander = await _seed_with_bystander(files, seeder)
            hostile = await RawPeer.connect(seeder.port)
            started = time.monotonic()
            hostile.send(handshake_bytes(files.torrent.info_hash)[:30])  # and then nothing
            assert await hostile.expect_closed() == b""
            assert time.monotonic() - started >= 0.4
            await _still_serving(files, seeder, bystander)

    asyncio.run(main())


# -- floods ------------------------------------------------------------------------------------


def test_keep_alive_flood_is_harmless(files: Files) -> None:
    """A megabyte of keep-alives (262,144 of them) is read and ignored: the connection stays
    open and keeps being served, and so does everyone else."""

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            bystander = await _seed_with_bystander(files, seeder)
            hostile = await RawPeer.connect(seeder.port)
            await hostile.handshake(files.torrent.info_hash)
            for _ in range(4):
                hostile.send(bytes(256 * 1024))
                await hostile.writer.drain()
            await hostile.unchoked()
            await hostile.fetch(files, 5, BLOCK, BLOCK)
            assert engine_peer(seeder) is not None
            await _still_serving(files, seeder, bystander)
            await hostile.fetch(files, 0, 0, BLOCK)  # and the flooder is served still

    asyncio.run(main())


def test_a_peer_that_loses_interest_is_choked_and_unchoked_when_interested_again(
    files: Files,
) -> None:
    """As libtorrent does: an unchoked peer that says it is not interested is choked (its
    slot goes to a peer that waits), and unchoked again when it is interested and a slot is
    free."""

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            await seeder.add(files.torrent, files.src.parent, seed=True)
            raw = await RawPeer.connect(seeder.port)
            await raw.handshake(files.torrent.info_hash)
            await raw.unchoked()
            raw.send(msg(wire.NOT_INTERESTED))
            await raw.receive(wire.Choke)
            await raw.unchoked()  # interested again: a slot is free
            await raw.fetch(files, 0, 0, BLOCK)

    asyncio.run(main())


def test_requests_up_to_our_advertised_reqq_are_all_served(files: Files) -> None:
    """The other side of the flood bound: OUR_REQQ requests at once (what we tell peers they
    may queue, BEP 10 'reqq') are all answered, in order."""

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            await seeder.add(files.torrent, files.src.parent, seed=True)
            hostile = await RawPeer.connect(seeder.port)
            await hostile.handshake(files.torrent.info_hash)
            await hostile.unchoked()
            asked = [(i % LAST, (i // LAST) % 2 * BLOCK) for i in range(peer.OUR_REQQ)]
            hostile.send(msg(*(wire.Request(i, b, BLOCK) for i, b in asked)))
            for i, b in asked:
                got = await hostile.receive(wire.Piece)
                assert (got.index, got.begin) == (i, b)
            assert engine_peer(seeder) is not None

    asyncio.run(main())


def test_request_flood_beyond_the_queue_limit_is_closed(files: Files) -> None:
    """Valid requests, but 3 * MAX_QUEUED_REQUESTS at once from a peer that does not read:
    the queue bound closes the connection (the engine never holds more than the bound)."""

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            bystander = await _seed_with_bystander(files, seeder)
            hostile = await RawPeer.connect(seeder.port, rcvbuf=4096)
            await hostile.handshake(files.torrent.info_hash)
            await hostile.unchoked()
            conn = engine_peer(seeder)
            assert conn is not None
            flood = [wire.Request(i % LAST, 0, BLOCK) for i in range(FAR_BEHIND)]
            hostile.send(msg(*flood))
            await poll(lambda: conn.closed, CLOSE_TIMEOUT, "the flooder to be closed")
            # The queue as it stood when the connection was closed.
            assert len(conn.state.requests_in) == peer.MAX_QUEUED_REQUESTS
            await hostile.expect_closed()
            await _still_serving(files, seeder, bystander)

    asyncio.run(main())


class CountingDeque(deque[tuple[int, int, int]]):
    """The engine's queue of a peer's requests, counting the scans a cancel makes of it."""

    removes = 0

    def remove(self, value: tuple[int, int, int]) -> None:
        CountingDeque.removes += 1
        super().remove(value)


def test_cancel_flood_does_not_scan_the_request_queue(files: Files) -> None:
    """Cancels for blocks that are not queued (already sent, or never asked for) are the
    common case; a flood of them must cost O(1) each, not a scan of up to a thousand queued
    requests, or one peer could keep the whole event loop busy."""

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            bystander = await _seed_with_bystander(files, seeder)
            hostile = await RawPeer.connect(seeder.port, rcvbuf=4096)
            await hostile.handshake(files.torrent.info_hash)
            await hostile.unchoked()
            conn = engine_peer(seeder)
            assert conn is not None
            last = (LAST, 0, 5000)
            hostile.send(msg(*(wire.Request(i % LAST, 0, BLOCK) for i in range(900))))
            hostile.send(msg(wire.Request(*last)))
            # The peer does not read: once our send buffer is full the queue stands still.
            await poll(lambda: conn.write_paused, CLOSE_TIMEOUT, "a full buffer")
            assert last in conn.state.requests_in
            queued = len(conn.state.requests_in)
            conn.state.requests_in = CountingDeque(conn.state.requests_in)
            CountingDeque.removes = 0
            hostile.send(msg(wire.Cancel(0, BLOCK, BLOCK)) * 20_000 + msg(wire.Cancel(*last)))
            await poll(lambda: last not in conn.state.requests_in, CLOSE_TIMEOUT, "the real cancel")
            assert CountingDeque.removes == 1
            assert len(conn.state.requests_in) == queued - 1
            assert not conn.closed
            await _still_serving(files, seeder, bystander)

    asyncio.run(main())


def test_requests_while_choked_from_a_peer_that_never_reads_are_closed(files: Files) -> None:
    """With the fast extension every request while choked earns a reject. A peer that keeps
    requesting and never reads must not make us buffer rejects without bound: the engine
    closes it once its send buffer is past the high-water mark."""

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            bystander = await _seed_with_bystander(files, seeder)
            hostile = await RawPeer.connect(seeder.port, rcvbuf=4096)
            await hostile.handshake(files.torrent.info_hash)  # never interested: choked
            await poll(lambda: engine_peer(seeder), CLOSE_TIMEOUT, "the hostile peer's turn")
            conn = engine_peer(seeder)
            assert conn is not None and conn.state.am_choking
            chunk = msg(wire.Request(0, 0, BLOCK)) * 30_000  # 510 KB, as many rejects back
            sent = 0
            buffered = 0
            async with asyncio.timeout(30):
                while not conn.closed and sent < 64 << 20:
                    hostile.send(chunk)
                    sent += len(chunk)
                    try:
                        await hostile.writer.drain()
                    except ConnectionError:
                        break
                    if conn.transport is not None:
                        buffered = max(buffered, conn.transport.get_write_buffer_size())
                await poll(lambda: conn.closed, CLOSE_TIMEOUT, "the non-reader to be closed")
            # The write buffer's high-water mark is 4 MiB; allow one chunk of slack.
            assert buffered < (4 << 20) + len(chunk)
            assert sent < 32 << 20
            await _still_serving(files, seeder, bystander)

    asyncio.run(main())


def test_connection_cap_refuses_the_extra_connections(files: Files) -> None:
    """Session(max_connections=3) full of idle hostile connections: five more connections are
    closed at once, without our handshake; a slot that frees up takes an honest leecher, which
    completes, and then a late peer, which is served."""

    async def main() -> None:
        async with Session(host="127.0.0.1", max_connections=3) as seeder:
            await seeder.add(files.torrent, files.src.parent, seed=True)
            idle = []
            for i in range(3):
                p = await RawPeer.connect(seeder.port)
                await p.handshake(files.torrent.info_hash, peer_id=b"-XX0001-idle-peer-%02d" % i)
                idle.append(p)
            await poll(lambda: len(seeder.connections) == 3, 10, "the idle peers")
            extras = [await RawPeer.connect(seeder.port) for _ in range(5)]
            for i, p in enumerate(extras):
                p.send(handshake_bytes(files.torrent.info_hash, peer_id=b"-XX0001-extra-%06d" % i))
            for p in extras:
                assert await p.expect_closed() == b""  # not even our handshake
            assert len(seeder.connections) == 3
            idle.pop().close()
            await poll(lambda: len(seeder.connections) == 2, CLOSE_TIMEOUT, "the slot to free")
            await honest_download(files, seeder.port)
            # The leecher is gone: its slot takes a new peer, which is served.
            await poll(lambda: len(seeder.connections) == 2, CLOSE_TIMEOUT, "the slot to free")
            late = await RawPeer.connect(seeder.port)
            await late.handshake(files.torrent.info_hash, peer_id=b"-XX0001-late-peer-00")
            await late.unchoked()
            await late.fetch(files, 4, 0, BLOCK)

    asyncio.run(main())


# -- our leecher against a hostile seed ------------------------------------------------------

Script = Callable[["HostileSeed", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Reply = Callable[[bytes, bytes], bytes]  # (info_hash, the leecher's handshake) -> our reply


class HostileSeed:
    """A listening socket that answers our leecher's handshake and then runs *script*; it
    records whether the engine then closed the connection."""

    def __init__(
        self, files: Files, script: Script, *, reply: Reply | None = None, hold: float = 5.0
    ) -> None:
        self.files = files
        self.script = script
        self.reply = reply  # instead of a valid handshake
        self.hold = hold  # how long the connection may last before we give up waiting
        self.closed = asyncio.Event()
        self.connections = 0
        self.requests: list[wire.Request] = []
        self.their_handshake: bytes = b""
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> HostileSeed:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        return ("127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            async with asyncio.timeout(self.hold):
                self.their_handshake = await reader.readexactly(wire.HANDSHAKE_LEN)
                info_hash = self.files.torrent.info_hash
                if self.reply is None:
                    writer.write(handshake_bytes(info_hash))
                else:
                    writer.write(self.reply(info_hash, self.their_handshake))
                await self.script(self, reader, writer)
                while await reader.read(1 << 16):
                    pass
            self.closed.set()
        except (ConnectionResetError, asyncio.IncompleteReadError):
            self.closed.set()
        except TimeoutError:
            pass  # kept open: the test sees self.closed unset
        finally:
            writer.close()

    async def read_requests(self, reader: asyncio.StreamReader, n: int = 1) -> None:
        """Read what our leecher sends until *n* requests have come."""
        parser = wire.Parser(expect_handshake=False, num_pieces=NUM_PIECES, fast=True)
        while len(self.requests) < n:
            data = await reader.read(1 << 16)
            if not data:
                return
            self.requests += [m for m in parser.feed(data) if type(m) is wire.Request]


def send_after_handshake(data: bytes) -> Script:
    async def script(seed: HostileSeed, reader: Any, writer: asyncio.StreamWriter) -> None:
        writer.write(data)

    return script


async def _wrong_length_block(seed: HostileSeed, reader: Any, writer: Any) -> None:
    writer.write(msg(wire.HAVE_ALL, wire.UNCHOKE))
    await seed.read_requests(reader)
    r = seed.requests[0]
    writer.write(msg(wire.Piece(r.index, r.begin, bytes(r.length - 1))))


NOTHING = send_after_handshake(b"")
LEECHER_CASES: list[tuple[str, Reply | None, Script]] = [
    ("reply-unknown-info-hash", lambda ih, hs: handshake_bytes(bytes(20)), NOTHING),
    ("reply-not-bittorrent", lambda ih, hs: b"HTTP/1.1 400 Bad Request\r\n" + bytes(60), NOTHING),
    ("reply-pstrlen-18", lambda ih, hs: b"\x12" + handshake_bytes(ih)[1:], NOTHING),
    (
        "reply-protocol-string",
        lambda ih, hs: handshake_bytes(ih).replace(b"BitT", b"bitT"),
        NOTHING,
    ),
    ("reply-is-our-own-handshake", lambda ih, hs: hs, NOTHING),
    (
        "have-all-without-fast-bit",
        lambda ih, hs: handshake_bytes(ih, fast=False),
        send_after_handshake(msg(wire.HAVE_ALL)),
    ),
    ("prefix-2**31", None, send_after_handshake(msg(wire.HAVE_ALL) + struct.pack(">I", 2**31))),
    ("unknown-id", None, send_after_handshake(msg(wire.HAVE_ALL) + raw(42, bytes(3)))),
    ("have-3-bytes", None, send_after_handshake(raw(4, b"\x00\x00\x01"))),
    ("bitfield-short", None, send_after_handshake(bitfield(b"\xff"))),
    ("bitfield-long", None, send_after_handshake(bitfield(b"\xff\xfc\x00"))),
    ("bitfield-spare-bits", None, send_after_handshake(bitfield(b"\xff\xff"))),
    ("have-past-end", None, send_after_handshake(msg(wire.Have(NUM_PIECES)))),
    (
        "late-bitfield-spare-bits",
        None,
        send_after_handshake(msg(wire.HAVE_ALL, wire.UNCHOKE) + bitfield(b"\xff\xfd")),
    ),
    (
        "unsolicited-piece",
        None,
        send_after_handshake(msg(wire.HAVE_ALL, wire.Piece(0, 0, bytes(BLOCK)))),
    ),
    (
        "piece-index-past-end",
        None,
        send_after_handshake(msg(wire.HAVE_ALL, wire.Piece(NUM_PIECES, 0, b"x"))),
    ),
    ("request-past-piece-end", None, send_after_handshake(msg(wire.Request(0, PIECE_LENGTH, 1)))),
    ("block-of-the-wrong-length", None, _wrong_length_block),
]


@pytest.mark.parametrize(
    ("reply", "script"), [pytest.param(r, s, id=n) for n, r, s in LEECHER_CASES]
)
def test_leecher_drops_a_hostile_seed_and_completes_from_an_honest_one(
    files: Files, reply: Reply | None, script: Script
) -> None:
    async def main() -> None:
        out = files.out_dir()
        async with (
            Session(host="127.0.0.1") as seeder,
            Session(host="127.0.0.1") as leecher,
            HostileSeed(files, script, reply=reply) as hostile,
        ):
            await seeder.add(files.torrent, files.src.parent, seed=True)
            t = await leecher.add(files.torrent, out)
            t.add_peers([hostile.address])
            async with asyncio.timeout(CLOSE_TIMEOUT + 1):
                await hostile.closed.wait()
            assert hostile.their_handshake[28:48] == files.torrent.info_hash
            assert engine_peer(leecher) is None
            t.add_peers([("127.0.0.1", seeder.port)])
            async with asyncio.timeout(20):
                await t.complete.wait()
            assert t.failed is None
        assert (out / "data.bin").read_bytes() == files.data

    asyncio.run(main())


# -- a silent seed must not stall a download --------------------------------------------------


async def _silent(seed: HostileSeed, reader: Any, writer: Any) -> None:
    """Claim every piece, unchoke, then read the requests and never answer one."""
    writer.write(msg(wire.HAVE_ALL, wire.UNCHOKE))
    await seed.read_requests(reader, n=10**9)


def test_silent_seed_is_snubbed_and_its_requests_go_to_an_honest_seed(files: Files) -> None:
    """With a short snub time (the controller's ``snub_seconds``; 60 s by default) the
    silent peer's requests are withdrawn and the honest seed serves them."""

    async def main() -> None:
        out = files.out_dir()
        async with (
            Session(host="127.0.0.1") as seeder,
            Session(host="127.0.0.1") as leecher,
            HostileSeed(files, _silent, hold=60) as silent,
        ):
            await seeder.add(files.torrent, files.src.parent, seed=True)
            t = await leecher.add(files.torrent, out)
            t.snub_seconds = 1.0
            t.add_peers([silent.address])
            await poll(lambda: silent.requests, CLOSE_TIMEOUT, "requests to the silent peer")
            conn = engine_peer(leecher)
            assert conn is not None
            await poll(lambda: conn.state.snubbed, 5, "the silent peer to be snubbed")
            assert len(conn.state.requests_out) <= 1  # a snubbed peer gets one request at a time
            started = time.monotonic()
            t.add_peers([("127.0.0.1", seeder.port)])
            async with asyncio.timeout(15):
                await t.complete.wait()
            assert time.monotonic() - started < 15
            assert t.failed is None
        assert (out / "data.bin").read_bytes() == files.data

    asyncio.run(main())


def test_silent_seed_with_the_default_snub_time_does_not_stall(files: Files) -> None:
    """Even before the 60 s snub time, end-game asks the honest seed for the blocks the
    silent one sits on, so the download completes at once."""

    async def main() -> None:
        out = files.out_dir()
        async with (
            Session(host="127.0.0.1") as seeder,
            Session(host="127.0.0.1") as leecher,
            HostileSeed(files, _silent, hold=60) as silent,
        ):
            await seeder.add(files.torrent, files.src.parent, seed=True)
            t = await leecher.add(files.torrent, out)
            t.add_peers([silent.address])
            await poll(lambda: silent.requests, CLOSE_TIMEOUT, "requests to the silent peer")
            t.add_peers([("127.0.0.1", seeder.port)])
            async with asyncio.timeout(15):
                await t.complete.wait()
            assert t.failed is None
        assert (out / "data.bin").read_bytes() == files.data

    asyncio.run(main())
