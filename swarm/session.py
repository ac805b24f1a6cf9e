"""A BitTorrent session: one listening socket, one peer id and the shared rate limits for any
number of torrents. This is the library API under ``swarm seed`` and ``swarm fetch``::

    async with Session(port=0) as session:
        t = await session.add(metainfo.load("file.torrent"), "downloads")
        await t.complete.wait()

Peers are dialled over uTP (BEP 29), then TCP, and accepted on both, uTP on the UDP port of
the TCP port's number (``utp=False``: TCP only; :mod:`swarm.peer_transports`). With
``dht=True`` the session also runs a Mainline DHT node (BEP 5) on UDP (``dht_port``, by
default uTP's socket), bootstrapped from ``dht_bootstrap`` and each torrent's ``nodes``, its
table kept in ``dht_state``: it finds peers for every torrent that is not private and announces
it (:mod:`swarm.dht_client`), and for a magnet's metadata. ``encryption`` is the MSE/PE policy
(:mod:`swarm.mse_shell`); ``notices`` (and ``on_notice``) say once what the user can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from swarm import __version__, metainfo
from swarm.choker import default_slots
from swarm.dht_client import PATIENCE, DhtClient
from swarm.errors import MetainfoError, SessionError, StorageError, SwarmError, TrackerError
from swarm.magnet import Magnet, parse_magnet
from swarm.metadata_fetch import FetchedMetadata, MetadataFetcher, MetadataProgress
from swarm.metainfo import Torrent, from_info
from swarm.mse_shell import PeerCrypto
from swarm.peer import PeerConnection
from swarm.peer_transports import PeerTransports
from swarm.ratelimit import RateLimiter, TokenBucket
from swarm.torrent import TorrentController
from swarm.uplink import UplinkGate
from swarm.webseed import WebSeedSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0
MAX_CONNECTIONS = 200
TORRENT_FILES_LOOKED_AT = 32
"""At most this many ``*.torrent`` files of a folder are read looking for a magnet's torrent."""


def make_peer_id() -> bytes:
    """An Azureus-style peer id: ``-SW0100-`` and 12 random bytes."""
    major, minor, *_ = (__version__.split(".") + ["0", "0"])[:3]
    return f"-SW{int(major):02d}{int(minor):02d}-".encode() + secrets.token_bytes(12)


class Session:
    """Holds the listener, the peer id and the rate limits; owns its torrents."""

    version = __version__

    def __init__(
        self,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        max_upload_rate: int | None = None,
        max_download_rate: int | None = None,
        max_connections: int = MAX_CONNECTIONS,
        peer_id: bytes | None = None,
        rng: random.Random | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        port_attempts: int = 1,
        dht: bool = False,
        dht_port: int | None = None,
        dht_bootstrap: Iterable[tuple[str, int]] = (),
        dht_state: Path | None = None,
        give_up_after: float | None = None,
        web_seeds: WebSeedSettings | bool = True,
        encryption: str = "prefer",
        on_notice: Callable[[str], None] | None = None,
        utp: bool = True,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port_attempts = port_attempts
        self.port = 0
        self.peer_id = peer_id or make_peer_id()
        self.key = secrets.randbits(32)
        self.rng = rng or random.Random()
        self.upload_limiter = RateLimiter(max_upload_rate)
        self.upload_gate = None if max_upload_rate else UplinkGate()  # swarm.uplink
        self._download_bucket = TokenBucket(max_download_rate) if max_download_rate else None
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self.connections: set[PeerConnection] = set()
        self.torrents: dict[bytes, TorrentController] = {}
        self._server: asyncio.Server | None = None
        self.net = PeerTransports(utp)  # uTP and TCP dials, the uTP endpoint
        self._dht_options = (dht_port, list(dht_bootstrap), dht_state) if dht else None
        # Seconds with no peer and no usable tracker before a download gives up (None: 30, or
        # 300 with the DHT, which may take that long to find a swarm).
        self.give_up_after = give_up_after
        self.dht: DhtClient | None = None
        self.web_seeds = web_seeds  # whether torrents use web seeds (BEP 19); add() overrides
        # MSE/PE (swarm.mse_shell); *on_notice* and `notices`: what the user can act on, once.
        self.crypto = PeerCrypto(
            encryption,
            info_hashes=self.torrents.keys,
            handshake_timeout=handshake_timeout,
            on_notice=on_notice,
            connect=self.net.connect,
        )
        self.notices = self.crypto.notices

    async def __aenter__(self) -> Session:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the listening socket: the port asked for, or the next free one of
        *port_attempts* ports from it (port 0: any free port)."""
        loop = asyncio.get_running_loop()
        first = self._requested_port
        attempts = 1 if first == 0 else max(1, min(self._port_attempts, 65536 - first))
        for port in range(first, first + attempts):
            try:
                self._server = await loop.create_server(
                    self._incoming, self.host, port, reuse_address=True, backlog=128
                )
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise SessionError(
                        f"cannot listen on {self.host}:{port}: {exc.strerror}"
                    ) from None
        else:
            ports = (
                f"ports {first}-{first + attempts - 1} are" if attempts > 1 else f"port {first} is"
            )
            raise SessionError(f"{ports} already in use")
        assert self._server is not None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("listening for peers on %s:%d", self.host, self.port)
        try:
            await self.net.start(self.host, self.port, self._incoming)
            if self._dht_options is not None:
                await self._start_dht(*self._dht_options)
        except BaseException:
            self._server.close()
            await self.net.close()
            raise

    async def _start_dht(
        self, port: int | None, routers: list[tuple[str, int]], state: Path | None
    ) -> None:
        """The DHT on *port*, or on uTP's socket when None (PeerTransports.dht_node)."""
        node = await self.net.dht_node(self.host, self.port, port, state, self.rng)
        self.dht = DhtClient(node, lambda: self.port, routers, self.rng)
        self.dht.start()

    @property
    def dht_port(self) -> int | None:
        """Our DHT node's UDP port (for the BEP 5 PORT message), None without a DHT."""
        return self.dht.node.address[1] if self.dht is not None else None

    def dht_ping(self, addr: tuple[str, int]) -> None:
        """A peer's PORT message named its DHT node: ping it, so it may join our table."""
        if self.dht is not None:
            self.dht.node.ping(addr)

    def _incoming(self) -> asyncio.Protocol:
        conn = PeerConnection(self)
        if len(self.connections) >= self.max_connections:
            # Refuse politely: the protocol closes the transport as soon as it is made.
            asyncio.get_running_loop().call_soon(conn.close, "too many connections")
        self.connections.add(conn)
        return self.crypto.incoming(conn)

    def can_connect(self) -> bool:
        return len(self.connections) < self.max_connections

    async def connect(self, torrent: TorrentController, addr: tuple[str, int]) -> PeerConnection:
        """Open an outgoing connection to a peer for *torrent* (OSError if it cannot be)."""
        if not self.can_connect():
            raise OSError("the session's connection limit is reached")

        def make() -> PeerConnection:
            conn = PeerConnection(self, torrent=torrent, address=addr)
            conn.handshake_sent = True  # the shell sends it, plain or as MSE's IA
            self.connections.add(conn)
            return conn

        def handshake(conn: PeerConnection) -> bytes:
            return conn.state.handshake()

        conn, _ = await self.crypto.dial(addr, make, torrent.info_hash, handshake, CONNECT_TIMEOUT)
        return conn

    def connection_closed(self, conn: PeerConnection) -> None:
        self.connections.discard(conn)

    def torrent_for(self, info_hash: bytes) -> TorrentController | None:
        t = self.torrents.get(info_hash)
        return t if t is not None and not t.stopped.is_set() else None

    def download_delay(self, n: int) -> float:
        return self._download_bucket.consume(n) if self._download_bucket else 0.0

    async def add(
        self,
        torrent: Torrent,
        root: str | Path,
        *,
        seed: bool = False,
        verify: bool = True,
        overwrite: bool = True,
        on_check: Any = None,
        **options: Any,
    ) -> TorrentController:
        """Add a torrent: *seed* the complete data found under *root* (checked against the
        torrent unless *verify* is False), or download into *root*, resuming what is there.
        Files already at the torrent's names are checked first and their good pieces kept;
        with *overwrite* False, files that hold other data raise ExistingDataError."""
        if torrent.info_hash in self.torrents:
            raise SwarmError(f"{torrent.name} is in this session already")
        options.setdefault("web_seeds", self.web_seeds)
        if options.get("unchoke_slots") is None:
            options["unchoke_slots"] = default_slots(not self.upload_limiter.unlimited)
        controller = TorrentController(self, torrent, Path(root), rng=self.rng, **options)
        try:
            await controller.open(seed=seed, verify=verify, overwrite=overwrite, on_check=on_check)
        except BaseException:
            controller.io.abandon()
            raise
        self.torrents[torrent.info_hash] = controller
        controller.start()
        if self.dht is not None and not torrent.private:  # BEP 27: never for a private one
            self.dht.add_routers(torrent.nodes)
            self.dht.watch(controller, private=torrent.private)
            controller.no_source_seconds = max(controller.no_source_seconds, PATIENCE)
        if self.give_up_after is not None:
            controller.no_source_seconds = self.give_up_after
        return controller

    async def add_magnet(
        self,
        uri_or_magnet: str | Magnet,
        folder: str | Path,
        *,
        peers: Iterable[tuple[str, int]] = (),
        on_progress: Callable[[MetadataProgress], None] | None = None,
        on_metadata: Callable[[Torrent, FetchedMetadata], None] | None = None,
        **options: Any,
    ) -> TorrentController:
        """Add the torrent a magnet URI names, downloading into *folder* (see :meth:`add`).

        The torrent is the ``.torrent`` file in *folder* whose info-hash is the magnet's when
        there is one (a second run resumes without fetching the metadata); otherwise the
        metadata is fetched from the magnet's peers and trackers and *peers* (*on_progress*
        is told how it goes, *on_metadata* when it is verified) and written to
        ``folder/NAME.torrent``. The download then dials the peers that answered, the
        magnet's and *peers*; a private torrent's (BEP 27) not those learned by PEX."""
        magnet = parse_magnet(uri_or_magnet) if isinstance(uri_or_magnet, str) else uri_or_magnet
        folder = Path(folder)
        direct = list(dict.fromkeys([*magnet.peers, *peers]))
        torrent = find_torrent_file(folder, magnet)
        dial = direct
        if torrent is None:
            fetcher = self.metadata_fetcher(magnet, direct)
            try:
                async with self._dht_feeding(magnet.info_hash, fetcher):
                    fetched = await fetcher.run(on_progress)
            except TrackerError as exc:  # nowhere to fetch it from
                if not magnet.web_seeds or fetcher.handshaken:
                    raise
                note = "a web seed (ws=) cannot give it: the metadata comes from peers (BEP 9)"
                raise TrackerError(f"{exc}; {note}") from None
            torrent = from_info(fetched.info, magnet.trackers, web_seeds=magnet.web_seeds)
            write_torrent_file(folder, torrent)
            if on_metadata is not None:
                on_metadata(torrent, fetched)
            answered = [a for a in fetcher.handshaken if a not in fetcher.banned]
            if torrent.private:
                answered = [a for a in answered if a not in fetcher.from_pex]
            dial = list(dict.fromkeys([*answered, *direct]))
        controller = await self.add(torrent, folder, **options)
        controller.add_peers(dial)
        return controller

    def metadata_fetcher(
        self, magnet: Magnet, peers: Iterable[tuple[str, int]] = ()
    ) -> MetadataFetcher:
        """A fetcher of *magnet*'s metadata as this session's peer (its id, port and key),
        given the magnet's trackers and *peers* to dial."""
        fetcher = MetadataFetcher(
            magnet.info_hash,
            peer_id=self.peer_id,
            port=self.port,
            version=self.version,
            trackers=magnet.trackers,
            key=self.key,
            rng=self.rng,
            crypto=self.crypto,
        )
        if self.give_up_after is not None:
            fetcher.no_source_seconds = self.give_up_after
        fetcher.add_peers(peers)
        return fetcher

    @contextlib.asynccontextmanager
    async def _dht_feeding(self, info_hash: bytes, fetcher: MetadataFetcher) -> AsyncIterator[None]:
        """While a magnet's metadata is fetched, DHT lookups feed the fetcher peers."""
        if self.dht is None:
            yield
            return
        if self.give_up_after is None:
            fetcher.no_source_seconds = max(fetcher.no_source_seconds, PATIENCE)
        async with self.dht.feeding(info_hash, fetcher.add_peers):
            yield

    async def remove(self, controller: TorrentController, announce_stopped: bool = True) -> None:
        self.torrents.pop(controller.info_hash, None)
        if self.dht is not None:
            self.dht.unwatch(controller)
        await controller.stop(announce_stopped=announce_stopped)

    async def close(self) -> None:
        """Stop every torrent (announcing 'stopped'), close the listener and connections."""
        if self._server is not None:
            self._server.close()
        await asyncio.gather(
            *(self.remove(t) for t in list(self.torrents.values())), return_exceptions=True
        )
        for conn in list(self.connections):
            conn.close()
        if self.dht is not None:
            await self.dht.close()
            self.dht = None
        await self.net.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


def find_torrent_file(folder: Path, magnet: Magnet) -> Torrent | None:
    """The torrent in *folder* whose info-hash is *magnet*'s: ``DN.torrent`` (the magnet's
    name) and ``DN.<8 hex>.torrent`` (see :func:`write_torrent_file`) first, then at most
    :data:`TORRENT_FILES_LOOKED_AT` other ``*.torrent`` files."""
    candidates: list[Path] = []
    if magnet.display_name and "/" not in magnet.display_name:
        candidates.append(folder / f"{magnet.display_name}.torrent")
        candidates.append(folder / f"{magnet.display_name}.{magnet.info_hash_hex[:8]}.torrent")
    try:
        for i, path in enumerate(folder.glob("*.torrent")):
            if i >= TORRENT_FILES_LOOKED_AT:
                break
            candidates.append(path)
    except OSError:
        pass
    for path in dict.fromkeys(candidates):
        try:
            if not path.is_file():
                continue
            torrent = metainfo.load(path)
        except (MetainfoError, OSError, ValueError):  # ValueError: a NUL in a magnet's dn
            continue
        if torrent.info_hash == magnet.info_hash:
            return torrent
    return None


def write_torrent_file(folder: Path, torrent: Torrent) -> Path:
    """Write ``folder/NAME.torrent`` whole or not at all (a temporary file in *folder*, then
    a rename); *folder* is made if missing. NAME is the info dictionary's name, which the
    parser has checked is a safe file name. A file of that name that holds another torrent is
    left alone: this one is then ``NAME.<first 8 hex digits of its info-hash>.torrent``."""
    path = folder / f"{torrent.name}.torrent"
    if path.exists() or path.is_symlink():
        try:
            same = metainfo.load(path).info_hash == torrent.info_hash
        except (MetainfoError, OSError):
            same = False
        if not same:
            path = folder / f"{torrent.name}.{torrent.info_hash_hex[:8]}.torrent"
    tmp = folder / f".{torrent.name}.torrent.{secrets.token_hex(4)}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(torrent.to_bytes())
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
