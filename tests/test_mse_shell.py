"""MSE/PE on swarm's connections (swarm.mse_shell): two sessions over real 127.0.0.1 sockets
with each pair of ``--encryption`` policies, what a refused dial tells the user (once), the
magnet fetcher over MSE, and hostile MSE peers closed while the seed serves on (issue 20)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import secrets
from pathlib import Path

import pytest

from swarm import metainfo
from swarm.create import create_torrent
from swarm.extensions import PexPeers
from swarm.mse_shell import PeerCrypto
from swarm.mse_transport import MseTransport, Rc4Reader
from swarm.session import Session
from swarm.wire.handshake import Handshake
from swarm.wire.mse import EncryptionPolicy, Initiator, Receiver, skey_lookup
from swarm.wire.mse_crypto import CRYPTO_PLAINTEXT, KEY_LEN, MseError, P, Rc4, public_key

SIZE = 600 * 1024 + 123
TIMEOUT = 20.0


@pytest.fixture
def files(tmp_path: Path) -> tuple[metainfo.Torrent, Path]:
    src = tmp_path / "seed" / "data.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(7).randbytes(SIZE))
    return metainfo.parse(create_torrent(src, piece_length=32 * 1024)), src


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def rc4_count(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many connection ends turned RC4 on (counted as they do)."""
    count = [0]
    original = MseTransport.encrypt_with

    def spy(self: MseTransport, cipher: object) -> None:
        count[0] += 1
        original(self, cipher)  # type: ignore[arg-type]

    monkeypatch.setattr(MseTransport, "encrypt_with", spy)
    return count


async def _download(
    files: tuple[metainfo.Torrent, Path], out: Path, seed_mode: str, leech_mode: str
) -> list[str]:
    torrent, src = files
    async with (
        Session(host="127.0.0.1", encryption=seed_mode) as seeder,
        Session(host="127.0.0.1", encryption=leech_mode) as leecher,
    ):
        await seeder.add(torrent, src.parent, seed=True)
        t = await leecher.add(torrent, out)
        t.add_peers([("127.0.0.1", seeder.port)])
        async with asyncio.timeout(TIMEOUT):
            await t.complete.wait()
        return list(leecher.notices)


@pytest.mark.parametrize(
    ("seed_mode", "leech_mode", "rc4"),
    [
        ("prefer", "prefer", False),  # plain first, and it works
        ("require", "prefer", True),  # plain refused, MSE at once: RC4 (require selects it)
        ("prefer", "require", True),  # MSE offering RC4 only
        ("require", "require", True),
        ("off", "prefer", False),
        ("prefer", "off", False),
    ],
)
def test_policy_pairs_download(
    files: tuple[metainfo.Torrent, Path],
    tmp_path: Path,
    rc4_count: list[int],
    seed_mode: str,
    leech_mode: str,
    rc4: bool,
) -> None:
    notices = asyncio.run(_download(files, tmp_path / "out", seed_mode, leech_mode))
    assert digest(tmp_path / "out" / "data.bin") == digest(files[1])
    assert rc4_count == [2 if rc4 else 0]  # both ends, or neither
    assert notices == []


@pytest.mark.parametrize(
    ("seed_mode", "leech_mode", "said"),
    [
        ("require", "off", "closed our unencrypted handshake (it may require encryption)"),
        ("off", "require", "closed our encrypted handshake (it may not support encryption)"),
    ],
)
def test_a_refused_policy_is_said_once(
    files: tuple[metainfo.Torrent, Path], tmp_path: Path, seed_mode: str, leech_mode: str, said: str
) -> None:
    torrent, src = files
    heard: list[str] = []

    async def main() -> list[str]:
        async with (
            Session(host="127.0.0.1", encryption=seed_mode) as seeder,
            Session(host="127.0.0.1", encryption=leech_mode, on_notice=heard.append) as leecher,
        ):
            await seeder.add(torrent, src.parent, seed=True)
            t = await leecher.add(torrent, tmp_path / "out")
            addr = ("127.0.0.1", seeder.port)
            for _ in range(3):  # three dials, one notice
                await leecher.connect(t, addr)
            assert t.stats().have_bytes == 0
            return leecher.notices

    notices = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert notices == heard and len(notices) == 1
    assert said in notices[0] and "127.0.0.1:" in notices[0]
    assert "run with --encryption prefer" in notices[0]


def test_prefer_redials_the_other_way_once_and_remembers(
    files: tuple[metainfo.Torrent, Path], tmp_path: Path
) -> None:
    """A require seed closes our plain handshake; the dial goes again with MSE at once, and
    the next dial of that peer starts with MSE."""
    torrent, src = files
    dials: list[bool] = []

    async def main() -> None:
        async with (
            Session(host="127.0.0.1", encryption="require") as seeder,
            Session(host="127.0.0.1") as leecher,
        ):
            await seeder.add(torrent, src.parent, seed=True)
            t = await leecher.add(torrent, tmp_path / "out", seed=False)
            addr = ("127.0.0.1", seeder.port)
            original = leecher.crypto._attempt

            async def spy(addr, shell, *rest):  # type: ignore[no-untyped-def]
                dials.append(shell.mse is not None)
                return await original(addr, shell, *rest)

            leecher.crypto._attempt = spy  # type: ignore[method-assign]
            conn = await leecher.connect(t, addr)
            assert not conn.closed
            conn.close()
            await leecher.connect(t, addr)

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert dials == [False, True, True]


@pytest.mark.parametrize("ours", ["require", "prefer"])
def test_magnet_metadata_over_mse(
    files: tuple[metainfo.Torrent, Path], tmp_path: Path, ours: str
) -> None:
    """The metadata fetcher's dials follow the policy (prefer: plain, closed, then MSE)."""
    torrent, src = files

    async def main() -> None:
        async with (
            Session(host="127.0.0.1", encryption="require") as seeder,
            Session(host="127.0.0.1", encryption=ours) as leecher,
        ):
            await seeder.add(torrent, src.parent, seed=True)
            magnet = f"magnet:?xt=urn:btih:{torrent.info_hash_hex}"
            t = await leecher.add_magnet(
                magnet, tmp_path / "out", peers=[("127.0.0.1", seeder.port)]
            )
            async with asyncio.timeout(TIMEOUT):
                await t.complete.wait()

    asyncio.run(main())
    assert digest(tmp_path / "out" / "data.bin") == digest(src)


# -- hostile MSE peers ------------------------------------------------------------------------


async def _send_and_wait_close(port: int, data: bytes, answer_yb: bool = False) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    got = b""
    try:
        async with asyncio.timeout(8):
            while chunk := await reader.read(65536):
                got += chunk
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    return got


def _step3(info_hash: bytes, policy: EncryptionPolicy | None = None) -> tuple[Initiator, bytes]:
    ia = Handshake(bytes(8), info_hash, b"-XX0001-hostile-mse!").encode()
    init = Initiator(info_hash, policy=policy, ia=ia)
    return init, init.start()


async def _mse_with(port: int, info_hash: bytes, policy: EncryptionPolicy | None) -> bytes:
    """A real MSE dial for *info_hash*; what came back after the handshake, decrypted."""
    init, start = _step3(info_hash, policy)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(start)
    got = b""
    try:
        async with asyncio.timeout(8):
            while chunk := await reader.read(65536):
                step = init.receive(chunk) if not got else None
                if step is not None and step.send:
                    writer.write(step.send)
                if step is not None and step.done is not None:
                    got = step.done.payload or b"-"
                    break
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        writer.close()
    return got


def test_hostile_mse_peers_are_closed_and_the_seed_serves_on(
    files: tuple[metainfo.Torrent, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torrent, src = files
    caplog.set_level(logging.DEBUG, logger="swarm.mse_shell")

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            await seeder.add(torrent, src.parent, seed=True)
            port = seeder.port
            # Garbage: 700 random bytes hold no req1 within PadA's bound.
            await _send_and_wait_close(port, secrets.token_bytes(700))
            # A degenerate public key (all zeros).
            await _send_and_wait_close(port, bytes(KEY_LEN) + bytes(100))
            # Oversize PadA: a key, then 600 bytes of padding before anything.
            await _send_and_wait_close(port, public_key(12345) + secrets.token_bytes(600))
            # A real MSE handshake for a torrent the seed does not serve.
            assert await _mse_with(port, bytes(20), None) == b""
            # Plaintext only, to a seed whose prefer policy allows it: that works.
            assert await _mse_with(port, torrent.info_hash, EncryptionPolicy(CRYPTO_PLAINTEXT))
            # A few bytes and silence: neither a BitTorrent handshake nor MSE's.
            t0 = asyncio.get_running_loop().time()
            await _send_and_wait_close(port, b"\x01\x02\x03" * 20)
            assert asyncio.get_running_loop().time() - t0 < 5
            # And the seed serves an honest leecher.
            async with Session(host="127.0.0.1", encryption="require") as leecher:
                t = await leecher.add(torrent, tmp_path / "out")
                t.add_peers([("127.0.0.1", port)])
                async with asyncio.timeout(TIMEOUT):
                    await t.complete.wait()

    asyncio.run(main())
    assert digest(tmp_path / "out" / "data.bin") == digest(src)
    said = caplog.text
    assert "no req1 hash within PadA's bound" in said
    assert "degenerate" in said
    assert "a torrent we do not serve" in said
    assert "neither a BitTorrent handshake nor MSE's" in said


def test_the_policy_names_are_checked() -> None:
    with pytest.raises(ValueError, match="prefer, require, off"):
        PeerCrypto("sometimes")


def test_rc4_transport_and_reader_keep_the_stream_whole() -> None:
    """What writelines enciphers (headers and blocks, one write) and what the reader
    deciphers (a read over 64 KiB goes up in pieces) are the stream, byte for byte."""
    key = b"k" * 20
    written: list[bytes] = []

    class Real:
        def write(self, data: bytes | bytearray) -> None:
            written.append(bytes(data))

        def writelines(self, parts: list[bytes]) -> None:
            raise AssertionError("RC4 writes go through write, as one buffer")

        def is_closing(self) -> bool:
            return False

    tr = MseTransport(Real())  # type: ignore[arg-type]
    tr.encrypt_with(Rc4(key))
    rng = random.Random(3)
    parts = [rng.randbytes(n) for n in (13, 16384, 13, 16384, 5, 200_000)]
    tr.writelines([parts[0], memoryview(parts[1]), *parts[2:]])
    tr.write(b"tail")
    assert len(written) == 2
    got: list[bytes] = []

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            got.append(data)

    reader = Rc4Reader(Sink(), Rc4(key))
    reader.data_received(written[0])
    reader.data_received(written[1])
    assert b"".join(got) == b"".join(parts) + b"tail"
    assert max(len(g) for g in got) <= 64 * 1024


class _HalfOpenTransport(asyncio.Transport):
    """A transport whose close waits for the peer (uTP's, until the peer acks our FIN)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closing = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 6881) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True  # no connection_lost until the peer answers

    def abort(self) -> None:
        self.closing = True


def test_a_peer_closing_its_side_during_the_handshake_is_a_refusal_at_once() -> None:
    """Over uTP a refused dial ends with the peer's FIN and no connection_lost until it acks
    ours (libtorrent never does): the end of the peer's stream alone settles the dial as
    refused, so prefer tries the other way at once instead of waiting out the handshake."""
    from swarm.mse_shell import REFUSED, _Dialer

    async def main() -> str:
        crypto = PeerCrypto("prefer")
        shell = _Dialer(crypto, asyncio.Protocol(), b"\x01" * 20, b"plain handshake", mse=False)
        tr = _HalfOpenTransport()
        shell.connection_made(tr)
        assert tr.sent == [b"plain handshake"]
        assert not shell.eof_received()  # and our side closes too
        async with asyncio.timeout(1):
            return await shell.outcome

    assert asyncio.run(main()) == REFUSED


@pytest.mark.parametrize(("seed_mode", "mse"), [("require", True), ("prefer", False)])
def test_a_connection_says_whether_it_went_through_mse_and_pex_flags_it(
    files: tuple[metainfo.Torrent, Path], tmp_path: Path, seed_mode: str, mse: bool
) -> None:
    """A connection made through the MSE handshake says so (``mse``), and PEX lists it to
    others with added.f 0x01 (BEP 11: prefers encryption); a plain one is not flagged."""
    from swarm.extensions import pex_addresses
    from swarm.wire.pex import FLAG_ENCRYPTION

    torrent, src = files

    async def main() -> tuple[bool, int]:
        async with (
            Session(host="127.0.0.1", encryption=seed_mode) as seeder,
            Session(host="127.0.0.1") as leecher,
        ):
            await seeder.add(torrent, src.parent, seed=True)
            t = await leecher.add(torrent, tmp_path / "out", seed=False)
            conn = await leecher.connect(t, ("127.0.0.1", seeder.port))
            flags = pex_addresses([conn])[("127.0.0.1", seeder.port)]
            return conn.mse, flags

    got_mse, flags = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert got_mse is mse
    assert bool(flags & FLAG_ENCRYPTION) is mse


def test_peers_pex_flags_as_preferring_encryption_are_dialled_with_mse_first(
    files: tuple[metainfo.Torrent, Path], tmp_path: Path
) -> None:
    """A PEX message's added.f 0x01 (handed to the session's crypto by the connection) makes
    the first dial of that address MSE, as libtorrent dials its pe_support peers."""
    torrent, src = files
    SEED_PORT = [0]
    dials: list[tuple[object, bool]] = []

    async def main() -> None:
        async with (
            Session(host="127.0.0.1") as seeder,
            Session(host="127.0.0.1") as leecher,
        ):
            await seeder.add(torrent, src.parent, seed=True)
            t = await leecher.add(torrent, tmp_path / "out", seed=False)
            addr = ("127.0.0.1", seeder.port)
            SEED_PORT[0] = seeder.port
            original = leecher.crypto._attempt

            async def spy(to, shell, *rest):  # type: ignore[no-untyped-def]
                dials.append((to, shell.mse is not None))
                return await original(to, shell, *rest)

            leecher.crypto._attempt = spy  # type: ignore[method-assign]
            # the connection hands a PEX event's flagged addresses to the session's crypto
            helper = await leecher.connect(t, addr)
            assert not helper.mse
            helper._dispatch(PexPeers([("127.0.0.9", 9)], frozenset({("127.0.0.9", 9)})))
            assert leecher.crypto._mse_first[("127.0.0.9", 9)] is True
            helper.close()
            leecher.crypto.mse_first([addr])
            conn = await leecher.connect(t, addr)
            assert conn.mse and not conn.closed

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    ours = [mse for to, mse in dials if to == ("127.0.0.1", SEED_PORT[0])]
    assert ours == [False, True]


def test_a_dial_closed_over_a_short_secret_goes_again_with_a_new_key(
    files: tuple[metainfo.Torrent, Path],
) -> None:
    """libtorrent 2.0.8, dialled, closes an MSE handshake whose secret begins with a zero
    byte (one in 256; Initiator.short_secret): the peer here does so on its first
    connection (its key picked to make S short, its lookup finding nothing). Under require
    the dial goes again with MSE and a new key, gets through, and no notice blames the peer."""
    torrent, _ = files
    ih = torrent.info_hash
    ia = Handshake(bytes(8), ih, b"-SW0000-shortsecret0").encode()
    seen: list[bytes] = []

    async def on_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ya = await reader.readexactly(KEY_LEN)
            seen.append(ya)
            if len(seen) == 1:
                y = int.from_bytes(ya, "big")
                short = next(x for x in range(2, 100_000) if pow(y, x, P) < 1 << 760)
                b = Receiver(lambda _: None, private_key=short)  # its mask finds nothing
            else:
                b = Receiver(skey_lookup([ih]))
            step = b.receive(ya)
            while True:
                writer.write(step.send)
                if step.done is not None:
                    break
                data = await reader.read(65536)
                if not data:
                    return
                step = b.receive(data)
            assert step.done.ia == ia
            writer.write(step.done.stream.encrypt(b"welcome"))
            await reader.read()
        except (MseError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main() -> tuple[bytes, list[str]]:
        heard: list[str] = []
        crypto = PeerCrypto("require", on_notice=heard.append)
        server = await asyncio.start_server(on_peer, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await crypto.open_stream(("127.0.0.1", port), ih, ia, TIMEOUT)
            got = await reader.readexactly(7)
            writer.close()
            return got, heard

    got, heard = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert got == b"welcome"
    assert len(seen) == 2 and seen[0] != seen[1]  # a new key on the second dial
    assert heard == []
