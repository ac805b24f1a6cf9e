"""MSE/PE on swarm's peer connections: the asyncio shell around :mod:`swarm.wire.mse`.

A shell is the protocol asyncio talks to while a connection's first bytes go by; the protocol
above it (a :class:`~swarm.peer.PeerConnection`, or the magnet fetcher's stream) gets an
:class:`~swarm.mse_transport.MseTransport` at once and its first bytes once the handshake is
through. Then:

- plaintext (a plain BitTorrent connection, or MSE with plaintext selected): the socket's
  transport is handed to the protocol above (``set_protocol``) and the transport's ``write``
  and ``writelines`` are the socket's own, so such a connection costs nothing per byte;
- RC4: reads go through :class:`~swarm.mse_transport.Rc4Reader` (one ``update`` a read, the
  only copy), writes through the transport's RC4 ``write`` and ``writelines`` (the upload
  loop's piece headers and blocks are encrypted into one buffer and written in one call).

:class:`PeerCrypto` is a session's policy, ``--encryption``:

- ``prefer`` (the default): accept both; dial plain first, as libtorrent does with its
  defaults (``out_enc_policy`` and ``in_enc_policy`` ``pe_enabled``, ``allowed_enc_level``
  both, ``prefer_rc4`` false): its ``torrent_peer::pe_support`` starts false ("assume no
  support in order to prefer opening non-encrypted connections. If it fails, we'll retry with
  encryption"), so ``bt_peer_connection::on_connected`` sends a plain handshake, and the next
  dial of a peer whose attempt failed is encrypted (with a fast reconnect, and back to plain
  if that fails). Here a peer that closes our plain handshake before it answers a byte is
  dialled again at once with MSE, and the other way round, once per dial; the way that worked
  is used first the next time. A peer that closes our MSE handshake when the agreed secret
  began with a zero byte is first dialled again with MSE and a new key, in every mode
  (:attr:`~swarm.wire.mse.Initiator.short_secret`: libtorrent 2.0.8 closes those). Dialling
  with MSE we offer plaintext and RC4 (crypto_provide 0x03); a peer that offers both gets
  plaintext (libtorrent's choice with ``prefer_rc4`` false: the handshake is hidden, the
  payload costs no cipher).
- ``require``: MSE only, with RC4: we offer RC4 alone (crypto_provide 0x02, as Transmission's
  "encryption required" does) and select it alone; a plain handshake coming in is closed.
- ``off``: plain only; an MSE handshake coming in is closed.

A dial refused under ``require`` or ``off`` is a :attr:`PeerCrypto.notices` line, once a kind,
because the user can act on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Literal, TypeVar, cast

from swarm.mse_transport import MseTransport, Rc4Reader
from swarm.wire.mse import EncryptionPolicy, Handshaken, Initiator, Receiver
from swarm.wire.mse_crypto import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    MseError,
    looks_plain,
    req2,
)

__all__ = ["ENCRYPTION_MODES", "Encryption", "PeerCrypto"]

log = logging.getLogger(__name__)

Encryption = Literal["prefer", "require", "off"]
ENCRYPTION_MODES: Final = ("prefer", "require", "off")
Address = tuple[str, int]
P = TypeVar("P", bound=asyncio.Protocol)
Connector = Callable[[Callable[[], asyncio.Protocol], Address], Awaitable[object]]

POLICIES: Final = {
    "prefer": EncryptionPolicy(CRYPTO_PLAINTEXT | CRYPTO_RC4, prefer=CRYPTO_PLAINTEXT),
    "require": EncryptionPolicy(CRYPTO_RC4, prefer=CRYPTO_RC4),
}
REMEMBERED: Final = 4096  # peers whose working way (plain or MSE) is kept
YA_SECONDS: Final = 2.0
"""An MSE dialer sends its 96-byte key at once: one that sent less and stops is something else."""

# What a dial came to: the peer answered, closed before it answered, or neither (we closed it:
# a time-out, a bad handshake).
ANSWERED, REFUSED, OTHER = "answered", "refused", "other"


class _Shell(asyncio.Protocol):
    """What both roles share: the protocol above, the transport, the hand-over."""

    def __init__(self, crypto: PeerCrypto, inner: asyncio.Protocol) -> None:
        self.crypto = crypto
        self.inner = inner
        self.tr: MseTransport | None = None
        self.outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.name = "?"
        self._timers: list[asyncio.TimerHandle] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        real = cast(asyncio.Transport, transport)
        self.tr = MseTransport(real)
        peer = real.get_extra_info("peername")
        self.name = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.inner.connection_made(cast(asyncio.Transport, self.tr))  # it may abort at once
        self._timers.append(
            asyncio.get_running_loop().call_later(
                self.crypto.handshake_timeout, self._close, "handshake timed out"
            )
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle(OTHER if self.tr is None or self.tr.closed_by_us else REFUSED)
        self.inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        """The peer closed its side before the hand-over: a refusal, said now. Over TCP
        ``connection_lost`` follows at once; over uTP it waits for the peer to ack our FIN,
        which a peer that has dropped the connection (libtorrent) never does, so the dial
        would wait out its handshake time instead of trying the other way."""
        self._settle(OTHER if self.tr is None or self.tr.closed_by_us else REFUSED)
        return None  # close our side too

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _settle(self, outcome: str) -> None:
        for timer in self._timers:
            timer.cancel()
        if not self.outcome.done():
            self.outcome.set_result(outcome)

    def _close(self, reason: str, level: int = logging.DEBUG) -> None:
        log.log(level, "closing %s: %s", self.name, reason)
        if self.tr is not None:
            self.tr.abort()

    def _pass_on(self, data: bytes) -> None:
        """Plain from here on: the socket's transport goes to the protocol above."""
        assert self.tr is not None
        self._settle(ANSWERED)
        self.tr.real.set_protocol(self.inner)
        if data:
            self.inner.data_received(data)

    def _handshaken(self, done: Handshaken, first: bytes) -> None:
        assert self.tr is not None
        self.tr.mse = True
        ciphers = done.stream.ciphers
        if ciphers is None:
            self._pass_on(first)
            return
        self._settle(ANSWERED)
        self.tr.encrypt_with(ciphers[0])
        self.tr.real.set_protocol(Rc4Reader(self.inner, ciphers[1]))
        if first:
            self.inner.data_received(first)


class _Dialer(_Shell):
    """An outgoing connection: *first* (our BitTorrent handshake) sent plain, or as MSE's IA."""

    def __init__(
        self, crypto: PeerCrypto, inner: asyncio.Protocol, info_hash: bytes, first: bytes, mse: bool
    ) -> None:
        super().__init__(crypto, inner)
        self.first = first
        self.mse: Initiator | None = None
        if mse:
            self.mse = Initiator(info_hash, policy=POLICIES[crypto.dial_policy], ia=first)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.tr is not None
        if not self.tr.is_closing():
            self.tr.real.write(self.mse.start() if self.mse is not None else self.first)

    def data_received(self, data: bytes) -> None:
        if self.mse is None:
            self._pass_on(data)
            return
        try:
            step = self.mse.receive(data)
        except MseError as exc:
            self._close(str(exc))
            return
        assert self.tr is not None
        if step.send:
            self.tr.real.write(step.send)
        if step.done is not None:
            self._handshaken(step.done, step.done.payload)


class _Listener(_Shell):
    """An incoming connection: a plain handshake passes on, MSE goes through the Receiver."""

    def __init__(self, crypto: PeerCrypto, inner: asyncio.Protocol) -> None:
        super().__init__(crypto, inner)
        self.head = b""
        self.mse: Receiver | None = None

    def data_received(self, data: bytes) -> None:
        if self.mse is None:
            self.head += data
            plain = looks_plain(self.head)
            if plain is None:
                return
            mode = self.crypto.mode
            if plain and mode == "require":
                self._close("a plain handshake, and --encryption require", logging.INFO)
            elif plain:
                self._pass_on(self.head)
            elif mode == "off":
                self._close("not a plain handshake (MSE?), and --encryption off", logging.INFO)
            else:
                self.mse = Receiver(self.crypto.lookup, policy=POLICIES[mode])
                data, self.head = self.head, b""
                self._timers.append(
                    asyncio.get_running_loop().call_later(
                        YA_SECONDS, self._close, "neither a BitTorrent handshake nor MSE's"
                    )
                )
            if self.mse is None:
                return
        try:
            step = self.mse.receive(data)
        except MseError as exc:
            self._close(str(exc))
            return
        assert self.tr is not None
        if step.send:
            self._timers[-1].cancel()  # the key came: YA_SECONDS no longer applies
            self.tr.real.write(step.send)
        if step.done is not None:
            self._handshaken(step.done, step.done.ia + step.done.payload)


class PeerCrypto:
    """A session's ``--encryption`` policy: the shells of its connections, the ways that
    worked, and the notices for the user (see the module's docstring)."""

    def __init__(
        self,
        mode: str = "prefer",
        *,
        info_hashes: Callable[[], Iterable[bytes]] = tuple,
        handshake_timeout: float = 10.0,
        on_notice: Callable[[str], None] | None = None,
        connect: Connector | None = None,
    ) -> None:
        if mode not in ENCRYPTION_MODES:
            raise ValueError(f"encryption is one of {', '.join(ENCRYPTION_MODES)}, not {mode!r}")
        self.mode = cast(Encryption, mode)
        self.dial_policy = "require" if mode == "require" else "prefer"
        self.handshake_timeout = handshake_timeout
        self.notices: list[str] = []
        self.on_notice = on_notice
        self.connect = connect  # how dials connect when not told (a session's: uTP, then TCP)
        self._info_hashes = info_hashes
        self._skeys: dict[bytes, bytes] = {}
        self._kinds: set[str] = set()
        self._mse_first: dict[Address, bool] = {}

    def lookup(self, skey_hash: bytes) -> bytes | None:
        """The info-hash of ours whose HASH('req2', info-hash) is *skey_hash* (the table made
        again when a hash is not in it: torrents come and go)."""
        found = self._skeys.get(skey_hash)
        if found is None:
            self._skeys = {req2(h): h for h in self._info_hashes()}
            found = self._skeys.get(skey_hash)
        return found

    def incoming(self, inner: asyncio.Protocol) -> asyncio.Protocol:
        """The protocol for a connection accepted for *inner*."""
        return _Listener(self, inner)

    async def dial(
        self,
        addr: Address,
        make: Callable[[], P],
        info_hash: bytes,
        first: Callable[[P], bytes],
        connect_timeout: float,
        connect: Connector | None = None,
    ) -> tuple[P, MseTransport | None]:
        """Connect to *addr* for a protocol from *make* whose first bytes are *first(it)*, the
        way the policy says; returns once the peer has answered (or refused, or timed out),
        with the transport the protocol writes to (None if the connection closed first).
        OSError or TimeoutError if the connection cannot be made. *connect* opens the
        connection for a protocol factory (TCP's ``loop.create_connection`` by default; a
        uTP dialler may be handed in: its transport needs ``set_protocol``)."""
        mse = self.mode == "require" or (self.mode == "prefer" and self._mse_first.get(addr, False))
        attempts = 2 if self.mode == "prefer" else 1
        rekeyed = False
        while True:
            attempts -= 1
            inner = make()
            shell = _Dialer(self, inner, info_hash, first(inner), mse)
            outcome = await self._attempt(addr, shell, connect_timeout, connect or self.connect)
            if outcome == ANSWERED:
                self._remember(addr, mse)
            if outcome == REFUSED and not rekeyed and shell.mse and shell.mse.short_secret:
                log.debug("%s:%d closed our MSE handshake with S short; a new key", *addr)
                rekeyed, attempts = True, attempts + 1
                continue
            if outcome != REFUSED or attempts == 0:
                break
            log.debug("%s:%d closed our handshake (MSE: %s); dialling again", *addr, mse)
            mse = not mse
        if outcome == REFUSED and self.mode != "prefer":
            self._refused(addr, mse)
        return inner, None if shell.tr is None or shell.tr.is_closing() else shell.tr

    @staticmethod
    async def _attempt(
        addr: Address, shell: _Dialer, connect_timeout: float, connect: Connector | None
    ) -> str:
        try:
            async with asyncio.timeout(connect_timeout):
                if connect is None:
                    await asyncio.get_running_loop().create_connection(lambda: shell, *addr)
                else:
                    await connect(lambda: shell, addr)
        except BaseException as exc:
            shell.inner.connection_lost(exc if isinstance(exc, Exception) else None)
            raise
        return await shell.outcome

    async def open_stream(
        self, addr: Address, info_hash: bytes, first: bytes, connect_timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """:meth:`dial` for asyncio streams: a reader and writer after the handshake, *first*
        (the BitTorrent handshake) sent. OSError when the connection closed first."""
        loop = asyncio.get_running_loop()
        readers: dict[asyncio.Protocol, asyncio.StreamReader] = {}

        def make() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(loop=loop)
            proto = asyncio.StreamReaderProtocol(reader, loop=loop)
            readers[proto] = reader
            return proto

        proto, tr = await self.dial(addr, make, info_hash, lambda _: first, connect_timeout)
        if tr is None:
            raise ConnectionResetError("the peer closed the connection during the handshake")
        writer = asyncio.StreamWriter(cast(asyncio.Transport, tr), proto, readers[proto], loop)
        return readers[proto], writer

    def mse_first(self, addrs: Iterable[Address]) -> None:
        """Dial *addrs* with MSE first (under prefer): PEX flagged them as preferring
        encryption (BEP 11 0x01), as libtorrent dials its pe_support peers."""
        for addr in addrs:
            self._remember(addr, True)

    def _remember(self, addr: Address, mse: bool) -> None:
        if self.mode != "prefer":
            return
        self._mse_first.pop(addr, None)
        if len(self._mse_first) >= REMEMBERED:
            del self._mse_first[next(iter(self._mse_first))]
        self._mse_first[addr] = mse

    def _refused(self, addr: Address, mse: bool) -> None:
        what, may = ("encrypted", "not support") if mse else ("unencrypted", "require")
        self.notice(
            what,
            f"peer {addr[0]}:{addr[1]} closed our {what} handshake (it may {may} encryption); "
            "run with --encryption prefer to reach it",
        )

    def notice(self, kind: str, line: str) -> None:
        """Tell the user *line*, once for each *kind* in the session's life."""
        if kind in self._kinds:
            return
        self._kinds.add(kind)
        self.notices.append(line)
        log.info("%s", line)
        if self.on_notice is not None:
            self.on_notice(line)
