"""Fetching a magnet's metadata (BEP 9): the pure plan, ``metainfo.from_info``, and the
fetcher against scripted serving peers on 127.0.0.1 (real sockets, port 0, every wait bounded).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from swarm import bencoding, metadata_fetch, metainfo, wire
from swarm.errors import MetainfoError, ProtocolError, TrackerError
from swarm.magnet import Magnet
from swarm.metadata_fetch import MetadataFetcher
from swarm.metadata_plan import MetadataPlan
from swarm.session import Session, find_torrent_file, write_torrent_file
from swarm.wire import ut_metadata

PIECE = wire.METADATA_PIECE
THEIR_UT_METADATA = 7  # the id the scripted peers want ut_metadata under
THEIR_UT_PEX = 9


def make_info(metadata_pieces: float, name: bytes = b"data.bin", private: bool = False) -> bytes:
    """A valid info dictionary about *metadata_pieces* × 16 KiB long (its piece hashes fill it)."""
    num = max(1, int(metadata_pieces * PIECE - 200) // 20)
    d = {
        b"name": name,
        b"piece length": 16384,
        b"length": num * 16384,
        b"pieces": random.Random(num).randbytes(20 * num),
    }
    if private:
        d[b"private"] = 1
    return bencoding.encode(d)


# -- the plan (pure) -------------------------------------------------------------------------


def test_the_plan_keeps_a_pipeline_per_peer_and_spreads_pieces_over_peers() -> None:
    info = make_info(20)
    plan = MetadataPlan(hashlib.sha1(info).digest(), pipeline=8)
    plan.add_peer("a", len(info))
    plan.add_peer("b", len(info))
    first = plan.requests("a", 0.0)
    second = plan.requests("b", 0.0)
    assert [r.piece for r in first] == list(range(8))
    assert [r.piece for r in second] == list(range(8, 16))
    assert plan.requests("a", 1.0) == []  # its pipeline is full
    plan.remove_peer("a")  # what it had goes to others
    assert [r.piece for r in plan.requests("b", 2.0)] == []  # b's pipeline is full too
    plan.add_peer("c", len(info))
    assert [r.piece for r in plan.requests("c", 3.0)] == list(range(8))


def test_the_plan_follows_each_size_apart_and_refuses_too_many_or_too_big() -> None:
    info = make_info(2)
    plan = MetadataPlan(hashlib.sha1(info).digest(), max_sizes=2)
    plan.add_peer("liar", len(info) + 100)
    plan.add_peer("honest", len(info))
    with pytest.raises(ProtocolError):
        plan.add_peer("third", len(info) + 200)
    with pytest.raises(ProtocolError):
        MetadataPlan(b"x" * 20).add_peer("huge", wire.MAX_METADATA_SIZE + 1)
    result = None
    for req in plan.requests("honest", 0.0):
        chunk = info[req.piece * PIECE : (req.piece + 1) * PIECE]
        result = plan.on_data("honest", wire.MetadataData(req.piece, len(info), chunk))
    assert result == wire.MetadataComplete(info)
    assert plan.contributors(len(info)) == 1


def test_the_plan_names_the_senders_of_metadata_that_does_not_hash() -> None:
    info = make_info(1)
    plan = MetadataPlan(hashlib.sha1(info).digest())
    plan.add_peer("bad", len(info))
    [req] = plan.requests("bad", 0.0)
    bad = bytes(len(info))
    result = plan.on_data("bad", wire.MetadataData(req.piece, len(info), bad))
    assert isinstance(result, wire.MetadataHashFailed)
    assert result.contributors == {"bad"}
    assert plan.peers == 0


def test_a_failure_of_several_senders_bans_nobody_and_asks_one_peer_alone_next() -> None:
    info = make_info(2)
    plan = MetadataPlan(hashlib.sha1(info).digest(), pipeline=1)
    plan.add_peer("liar", len(info))
    plan.add_peer("honest", len(info))

    def answer(peer: str, req: wire.MetadataRequest) -> object:
        chunk = info[req.piece * PIECE : (req.piece + 1) * PIECE]
        if peer == "liar":
            chunk = bytes(len(chunk))
        return plan.on_data(peer, wire.MetadataData(req.piece, len(info), chunk))

    [a] = plan.requests("liar", 0.0)
    [b] = plan.requests("honest", 0.0)
    answer("liar", a)
    assert answer("honest", b) == wire.MetadataHashFailed(frozenset())  # nobody banned
    assert plan.peers == 2
    [a] = plan.requests("liar", 1.0)  # the first to ask has the round to itself
    assert plan.requests("honest", 1.0) == []
    answer("liar", a)
    [a] = plan.requests("liar", 1.0)
    assert answer("liar", a) == wire.MetadataHashFailed(frozenset({"liar"}))
    assert plan.peers == 1
    result = None
    while result is None:
        [b] = plan.requests("honest", 2.0)
        result = answer("honest", b)
    assert result == wire.MetadataComplete(info)


# -- metainfo.from_info ---------------------------------------------------------------------


def test_from_info_keeps_the_info_bytes_and_gives_each_tracker_a_tier() -> None:
    info = make_info(1.5, private=True)
    t = metainfo.from_info(
        info, ["http://a/ann", "udp://b:80", "http://a/ann"], web_seeds=["http://w/"]
    )
    assert t.raw_info == info
    assert t.info_hash == hashlib.sha1(info).digest()
    assert t.announce_tiers == (("http://a/ann",), ("udp://b:80",))
    assert t.url_list == ("http://w/",)
    assert t.private
    again = metainfo.parse(t.to_bytes())
    assert again.info_hash == t.info_hash and again.announce_tiers == t.announce_tiers


def test_from_info_checks_the_info_dictionary_as_a_torrent_file_does() -> None:
    with pytest.raises(MetainfoError):
        metainfo.from_info(bencoding.encode({b"name": b"../x", b"length": 1}))


# -- a scripted serving peer -----------------------------------------------------------------


class ServingPeer:
    """A peer on 127.0.0.1 that answers a fetcher's handshake and serves *info* by BEP 9, or
    misbehaves as told. It records what it was asked and how many connections it had."""

    def __init__(
        self,
        info: bytes,
        *,
        info_hash: bytes | None = None,
        metadata_size: int | None = -1,
        ut_metadata: bool = True,
        mode: str = "good",  # good, corrupt, out_of_range, reject
        pex: list[tuple[str, int]] = (),  # type: ignore[assignment]
        hold: Callable[[], bool] | None = None,
    ) -> None:
        self.info = info
        self.info_hash = info_hash or hashlib.sha1(info).digest()
        self.metadata_size = len(info) if metadata_size == -1 else metadata_size
        self.ut_metadata = ut_metadata
        self.mode = mode
        self.pex = list(pex)
        self.hold = hold
        self.asked: list[int] = []
        self.connections = 0
        self.closed_by_fetcher = 0
        self.their_handshake: wire.ExtendedHandshake | None = None
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ServingPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        parser = wire.Parser(expect_handshake=True)
        reserved = wire.make_reserved(fast=True, extended=True)
        try:
            while data := await reader.read(65536):
                msgs = parser.feed(data)
                if msgs and isinstance(msgs[0], wire.Handshake):
                    parser.fast = msgs[0].supports_fast
                    msgs += parser.feed(b"")
                for msg in msgs:
                    if isinstance(msg, wire.Handshake):
                        assert msg.info_hash == self.info_hash
                        peer_id = b"-SP0001-" + bytes(12)
                        writer.write(wire.Handshake(reserved, self.info_hash, peer_id).encode())
                        writer.write(wire.encode(wire.Extended(0, self._handshake())))
                    elif isinstance(msg, wire.Extended) and msg.ext_id == 0:
                        self.their_handshake = wire.ExtendedHandshake.decode(msg.payload)
                        if self.pex:
                            pex = wire.PexMessage(added=self.pex, added_f=bytes(len(self.pex)))
                            ours = self.their_handshake.m[wire.UT_PEX]
                            writer.write(wire.encode(wire.Extended(ours, pex.encode())))
                    elif isinstance(msg, wire.Extended) and msg.ext_id == THEIR_UT_METADATA:
                        req = ut_metadata.decode(msg.payload)
                        assert isinstance(req, wire.MetadataRequest)
                        self.asked.append(req.piece)
                        await self._answer(writer, req.piece)
                await writer.drain()
            self.closed_by_fetcher += 1
        except (ConnectionError, OSError):
            self.closed_by_fetcher += 1
        finally:
            writer.close()

    def _handshake(self) -> bytes:
        m = {wire.UT_PEX: THEIR_UT_PEX}
        if self.ut_metadata:
            m[wire.UT_METADATA] = THEIR_UT_METADATA
        hs = wire.ExtendedHandshake(m=m, v="scripted 1.0", metadata_size=self.metadata_size)
        return hs.encode()

    async def _answer(self, writer: asyncio.StreamWriter, piece: int) -> None:
        assert self.their_handshake is not None
        theirs = self.their_handshake.m[wire.UT_METADATA]
        if self.hold is not None:
            async with asyncio.timeout(10):
                while self.hold():
                    await asyncio.sleep(0.01)
        chunk = self.info[piece * PIECE : (piece + 1) * PIECE]
        if self.mode == "reject":
            payload = ut_metadata.encode(wire.MetadataReject(piece))
        elif self.mode == "huge":  # a length prefix over the parser's limit for an extended message
            writer.write((2 << 20).to_bytes(4, "big") + bytes([20, theirs]) + bytes(1000))
            return
        elif self.mode == "out_of_range":
            head = {b"msg_type": 1, b"piece": 1000, b"total_size": len(self.info)}
            payload = bencoding.encode(head) + chunk
        else:
            if self.mode == "corrupt":
                chunk = bytes(b ^ 0xFF for b in chunk)
            payload = ut_metadata.encode(wire.MetadataData(piece, len(self.info), chunk))
        writer.write(wire.encode(wire.Extended(theirs, payload)))


def fetcher_for(info: bytes, **kw: object) -> MetadataFetcher:
    return MetadataFetcher(
        hashlib.sha1(info).digest(),
        peer_id=b"-SW0100-" + bytes(12),
        port=6881,
        version="test",
        **kw,  # type: ignore[arg-type]
    )


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll *predicate* on the event loop until true; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


# -- the fetcher against scripted peers -----------------------------------------------------


def test_fetches_several_pieces_from_two_peers_at_once() -> None:
    info = make_info(20)

    async def main() -> None:
        peers: list[ServingPeer] = []

        def neither_asked_yet() -> bool:  # each holds its answers until both were asked
            return not all(p.asked for p in peers)

        async with (
            ServingPeer(info, hold=neither_asked_yet) as a,
            ServingPeer(info, hold=neither_asked_yet) as b,
        ):
            peers += [a, b]
            fetcher = fetcher_for(info)
            fetcher.add_peers([a.addr, b.addr])
            seen = []
            fetched = await fetcher.run(seen.append)
            assert fetched.info == info
            assert fetched.contributors == 2
            assert a.asked and b.asked
            assert sorted(set(a.asked + b.asked)) == list(range(-(-len(info) // PIECE)))
            assert list(fetcher.handshaken) == [a.addr, b.addr] or set(fetcher.handshaken) == {
                a.addr,
                b.addr,
            }
            assert seen[-1].pieces == seen[-1].total == -(-len(info) // PIECE)
            theirs = a.their_handshake
            assert theirs is not None and theirs.v == "swarm test" and theirs.p == 6881
            assert theirs.m == {wire.UT_METADATA: wire.UT_METADATA_ID, wire.UT_PEX: wire.UT_PEX_ID}

    run(main())


def test_a_peer_whose_metadata_does_not_hash_is_banned_and_a_good_one_finishes() -> None:
    info = make_info(1)

    async def main() -> None:
        async with ServingPeer(info, mode="corrupt") as bad, ServingPeer(info) as good:
            fetcher = fetcher_for(info)
            fetcher.add_peers([bad.addr])
            task = asyncio.ensure_future(fetcher.run())
            await until(lambda: bad.addr in fetcher.banned)
            await until(lambda: bad.closed_by_fetcher == 1)
            fetcher.add_peers([good.addr, bad.addr])  # a banned peer is not dialled again
            assert (await task).info == info
            assert bad.connections == 1 and good.asked == [0]

    run(main())


def test_a_liar_and_an_honest_peer_at_once_the_fetch_finishes() -> None:
    info = make_info(4)

    async def main() -> None:
        async with ServingPeer(info, mode="corrupt") as bad, ServingPeer(info) as good:
            fetcher = fetcher_for(info)
            fetcher.add_peers([bad.addr, good.addr])
            assert (await fetcher.run()).info == info
            assert good.addr not in fetcher.banned

    run(main())


def test_an_oversize_metadata_size_closes_that_peer_and_the_fetch_goes_on() -> None:
    info = make_info(2)

    async def main() -> None:
        huge = 9 << 20
        async with ServingPeer(info, metadata_size=huge) as liar, ServingPeer(info) as good:
            fetcher = fetcher_for(info)
            fetcher.add_peers([liar.addr])
            task = asyncio.ensure_future(fetcher.run())
            await until(lambda: liar.closed_by_fetcher == 1)
            assert liar.asked == [] and fetcher.plan.progress() == (0, None)
            fetcher.add_peers([good.addr])
            assert (await task).info == info
            assert liar.connections == 1  # a peer that broke the protocol is not redialled

    run(main())


def test_a_piece_out_of_range_closes_that_peer_and_the_fetch_goes_on() -> None:
    info = make_info(2)

    async def main() -> None:
        async with ServingPeer(info, mode="out_of_range") as bad, ServingPeer(info) as good:
            fetcher = fetcher_for(info)
            fetcher.add_peers([bad.addr])
            task = asyncio.ensure_future(fetcher.run())
            await until(lambda: bad.closed_by_fetcher == 1)
            assert bad.asked
            fetcher.add_peers([good.addr])
            fetched = await task
            assert fetched.info == info and fetched.contributors == 1
            assert sorted(good.asked) == [0, 1]

    run(main())


def test_a_huge_message_closes_that_peer_before_it_is_buffered() -> None:
    info = make_info(2)

    async def main() -> None:
        async with ServingPeer(info, mode="huge") as bad, ServingPeer(info) as good:
            fetcher = fetcher_for(info)
            fetcher.add_peers([bad.addr])
            task = asyncio.ensure_future(fetcher.run())
            await until(lambda: bad.closed_by_fetcher == 1)
            fetcher.add_peers([good.addr])
            assert (await task).info == info
            assert bad.connections == 1

    run(main())


def test_rejected_pieces_are_asked_of_another_peer() -> None:
    info = make_info(3)

    async def main() -> None:
        async with ServingPeer(info, mode="reject") as refuser, ServingPeer(info) as good:
            fetcher = fetcher_for(info)
            fetcher.add_peers([refuser.addr])
            task = asyncio.ensure_future(fetcher.run())
            await until(lambda: len(refuser.asked) == 3)
            fetcher.add_peers([good.addr])
            fetched = await task
            assert fetched.info == info and fetched.contributors == 1
            assert sorted(good.asked) == [0, 1, 2]
            assert sorted(refuser.asked) == [0, 1, 2]  # a rejected piece is not asked again

    run(main())


def test_a_peer_without_ut_metadata_is_closed_after_a_short_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metadata_fetch, "NO_METADATA_GRACE", 0.3)
    info = make_info(1)

    async def main() -> None:
        async with ServingPeer(info, ut_metadata=False) as plain:
            fetcher = fetcher_for(info)
            fetcher.add_peers([plain.addr])
            task = asyncio.ensure_future(fetcher.run())
            await until(lambda: plain.closed_by_fetcher == 1, timeout=5)
            assert list(fetcher.handshaken) == [plain.addr]  # for the download phase
            assert fetcher.progress().with_metadata == 0
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(main())


def test_peers_learned_by_pex_are_dialled(monkeypatch: pytest.MonkeyPatch) -> None:
    info = make_info(2)

    async def main() -> None:
        async with ServingPeer(info) as second:
            async with ServingPeer(info, metadata_size=None, pex=[second.addr]) as first:
                fetcher = fetcher_for(info)
                fetcher.add_peers([first.addr])
                fetched = await fetcher.run()
                assert fetched.info == info
                assert sorted(second.asked) == [0, 1] and first.asked == []
                assert fetcher.from_pex == {second.addr}

    run(main())


def test_no_source_at_all_fails_with_one_line() -> None:
    info = make_info(1)

    async def main() -> None:
        fetcher = fetcher_for(info, no_source_seconds=0.3)
        with pytest.raises(TrackerError, match="no usable tracker and no peer"):
            await fetcher.run()

    run(main())


def test_trackers_are_told_left_16_kib_before_the_metadata() -> None:
    info = make_info(1)
    asked: list[int] = []

    async def main() -> None:
        async with ServingPeer(info) as good:

            async def announce(url: str, req: object, tracker_id: object) -> object:
                from swarm.announce import AnnounceResponse

                asked.append(req.left)  # type: ignore[attr-defined]
                return AnnounceResponse(interval=60, min_interval=None, peers=[good.addr])

            fetcher = fetcher_for(info, trackers=["http://t.invalid/announce"], announce=announce)
            assert (await fetcher.run()).info == info
            assert asked == [metadata_fetch.LEFT_BEFORE_METADATA] == [16384]

    run(main())


# -- Session.add_magnet and the .torrent beside the data ---------------------------------------


def test_add_magnet_writes_name_torrent_and_a_second_run_finds_it(tmp_path: Path) -> None:
    info = make_info(2, name=b"film.bin")
    info_hash = hashlib.sha1(info).digest()

    async def main() -> None:
        async with ServingPeer(info) as peer, Session(host="127.0.0.1") as session:
            magnet = Magnet(info_hash, "film.bin", peers=[peer.addr])
            t = await session.add_magnet(magnet, tmp_path)
            assert t.torrent.raw_info == info
            await session.remove(t, announce_stopped=False)
        written = tmp_path / "film.bin.torrent"
        assert metainfo.load(written).info_hash == info_hash
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
        found = find_torrent_file(tmp_path, Magnet(info_hash))  # no dn: the folder is looked at
        assert found is not None and found.raw_info == info
        async with Session(host="127.0.0.1") as session:
            t = await session.add_magnet(Magnet(info_hash, "film.bin"), tmp_path)  # no peers
            assert t.torrent.info_hash == info_hash
            await session.remove(t, announce_stopped=False)

    run(main())


def test_a_torrent_file_of_another_torrent_is_not_taken(tmp_path: Path) -> None:
    other = metainfo.from_info(make_info(1, name=b"other.bin"))
    write_torrent_file(tmp_path, other)
    (tmp_path / "junk.torrent").write_bytes(b"not bencoding")
    assert find_torrent_file(tmp_path, Magnet(b"\x01" * 20, "other.bin")) is None
    assert find_torrent_file(tmp_path, Magnet(other.info_hash)) is not None


def test_a_name_torrent_of_another_torrent_is_left_alone(tmp_path: Path) -> None:
    mine = metainfo.from_info(make_info(1, name=b"same.bin"))
    theirs = metainfo.from_info(make_info(2, name=b"same.bin"))
    write_torrent_file(tmp_path, theirs)
    path = write_torrent_file(tmp_path, mine)
    assert path.name == f"same.bin.{mine.info_hash_hex[:8]}.torrent"
    assert metainfo.load(tmp_path / "same.bin.torrent").info_hash == theirs.info_hash
    assert write_torrent_file(tmp_path, theirs).name == "same.bin.torrent"  # its own: rewritten
    found = find_torrent_file(tmp_path, Magnet(mine.info_hash, "same.bin"))
    assert found is not None and found.info_hash == mine.info_hash


def test_the_cli_says_from_how_many_peers() -> None:
    from swarm.cli.magnet_fetch import metadata_line, metadata_status
    from swarm.metadata_fetch import FetchedMetadata, MetadataProgress

    assert (
        metadata_status(MetadataProgress(3, 2, 1, 4))
        == "fetching metadata from 2 peers (3 connected)"
    )
    assert metadata_status(MetadataProgress(1, 1, 0, None)) == "fetching metadata from 1 peer"
    info = make_info(1, name=b"film.bin")
    torrent = metainfo.from_info(info)
    line = metadata_line(torrent, FetchedMetadata(info, 2, 0.1), 0.414)
    assert line == f"metadata: film.bin, {len(info)} bytes, from 2 peers in 0.41 s"


def test_the_addresses_a_fetcher_keeps_are_bounded() -> None:
    fetcher = fetcher_for(make_info(1))
    flood = [(f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", 6881) for i in range(30_000)]
    fetcher.add_peers(flood, pex=True)
    assert len(fetcher._known) == metadata_fetch.MAX_KNOWN
    fetcher._known.clear()  # as if all were dialled and gone
    for start in range(0, 30_000, 1000):
        fetcher.add_peers(flood[start : start + 1000], pex=True)
        fetcher._known.clear()
    assert len(fetcher.from_pex) <= metadata_fetch.MAX_ADDRESSES
    fresh = fetcher_for(make_info(1))
    fresh.add_peers([("10.200.0.1", 0), ("10.200.0.2", 65536), ("10.200.0.3", 1)])
    assert list(fresh._known) == [("10.200.0.3", 1)]
