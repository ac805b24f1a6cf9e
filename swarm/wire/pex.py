"""BEP 11 (ut_pex): peer exchange, the message and what to tell each peer, as pure data.

A PEX message is the payload of an extended message (BEP 10) sent under the id the receiver
named for ``ut_pex``: a bencoded dictionary of compact peer lists, ``added`` / ``dropped``
(6 bytes each: IPv4 address and port, big-endian, as BEP 23) and ``added6`` / ``dropped6``
(18 bytes each), with one flags byte per added peer in ``added.f`` / ``added6.f``.
:class:`PexMessage` is the codec; :class:`PexState` decides what to send one peer, when.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from swarm import bencoding
from swarm.errors import BencodeError, ProtocolError

__all__ = [
    "FLAG_ENCRYPTION",
    "FLAG_HOLEPUNCH",
    "FLAG_OUTGOING",
    "FLAG_SEED",
    "FLAG_UTP",
    "MAX_PEX_PEERS",
    "PEX_INTERVAL",
    "PEX_MAX_ADDED",
    "Address",
    "PexMessage",
    "PexState",
]

Address = tuple[str, int]

FLAG_ENCRYPTION = 0x01
FLAG_SEED = 0x02
FLAG_UTP = 0x04
FLAG_HOLEPUNCH = 0x08
FLAG_OUTGOING = 0x10
"""The ``added.f`` bits (BEP 11): prefers encryption, is a seed, speaks uTP, supports
ut_holepunch, is reachable (we connected to it, not it to us)."""

MAX_PEX_PEERS = 200
"""At most this many entries of each list are read from one message; the rest are ignored,
so a flood costs bounded memory (the framing already caps the payload at 1 MiB)."""
PEX_INTERVAL = 60.0
"""BEP 11: at most one PEX message a minute to a peer."""
PEX_MAX_ADDED = 50
"""BEP 11: at most 50 added and 50 dropped peers in one message."""


# socket.inet_pton / inet_ntop, not ipaddress: a PEX message carries up to 50 addresses and
# ipaddress's objects cost several times as much per address (it was 23% of a process's time
# with 25 downloaders in it).
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}


def _packed(host: str) -> tuple[int, bytes]:
    for version, family in _FAMILY.items():
        try:
            return version, socket.inet_pton(family, host)
        except (OSError, ValueError):  # ValueError: a NUL in the string
            continue
    raise ValueError(f"{host!r} is not an IP address")


def _compact(peers: Iterable[Address], version: int) -> bytes:
    out = bytearray()
    for host, port in peers:
        got, packed = _packed(host)
        if got != version or not 0 <= port <= 65535:
            raise ValueError(f"{host}:{port} does not belong in an IPv{version} PEX list")
        out += packed + port.to_bytes(2, "big")
    return bytes(out)


def _peers(d: dict[bytes, object], key: bytes, size: int) -> list[Address]:
    raw = d.get(key, b"")
    if not isinstance(raw, bytes):
        raise ProtocolError(f"the PEX list {key.decode()} is not a byte string")
    if len(raw) % size:
        raise ProtocolError(f"the PEX list {key.decode()} is {len(raw)} bytes, not {size}s")
    ntop = _ntop4 if size == 6 else _ntop6
    return [
        (ntop(raw[at : at + size - 2]), (raw[at + size - 2] << 8) | raw[at + size - 1])
        for at in range(0, min(len(raw), MAX_PEX_PEERS * size), size)
    ]


def _ntop4(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, packed)


def _ntop6(packed: bytes) -> str:
    text = socket.inet_ntop(socket.AF_INET6, packed)
    # inet_ntop writes an embedded IPv4 address dotted (::ffff:1.2.3.4); keep the all-hex
    # form ipaddress gives (and the rest of swarm has always seen) for those rare ones.
    return str(ipaddress.IPv6Address(packed)) if "." in text else text


def _flags(d: dict[bytes, object], key: bytes, count: int) -> bytes:
    # libtorrent reads the flags only when there is one per added peer; so do we
    raw = d.get(key)
    if not isinstance(raw, bytes) or len(raw) < count:
        return bytes(count)
    return raw[:count]


@dataclass(frozen=True, slots=True)
class PexMessage:
    """One ut_pex message. ``added_f[i]`` holds the flags of ``added[i]`` (0 if unknown)."""

    added: list[Address] = field(default_factory=list)
    added_f: bytes = b""
    dropped: list[Address] = field(default_factory=list)
    added6: list[Address] = field(default_factory=list)
    added6_f: bytes = b""
    dropped6: list[Address] = field(default_factory=list)

    def encode(self) -> bytes:
        """The bencoded dictionary, the extended message's payload. ``ValueError`` if an
        address is in the wrong list or a flags string is not one byte per added peer."""
        if len(self.added_f) != len(self.added) or len(self.added6_f) != len(self.added6):
            raise ValueError("a PEX message needs one flags byte per added peer")
        return bencoding.encode(
            {
                b"added": _compact(self.added, 4),
                b"added.f": bytes(self.added_f),
                b"dropped": _compact(self.dropped, 4),
                b"added6": _compact(self.added6, 6),
                b"added6.f": bytes(self.added6_f),
                b"dropped6": _compact(self.dropped6, 6),
            }
        )

    def prefers_encryption(self) -> list[Address]:
        """The added peers whose flags say they prefer encryption (``added.f`` bit 0x01: they
        speak MSE/PE; libtorrent dials such a peer encrypted first)."""
        return [
            a
            for peers, flags in ((self.added, self.added_f), (self.added6, self.added6_f))
            for a, f in zip(peers, flags, strict=False)
            if f & FLAG_ENCRYPTION
        ]

    @classmethod
    def decode(cls, payload: bytes) -> PexMessage:
        """Read a ut_pex payload. A missing list is empty; flags too short for the added
        peers are taken as 0. Only the first :data:`MAX_PEX_PEERS` entries of each list
        are kept. :class:`ProtocolError` if the payload is not a bencoded dictionary or a list
        is not a byte string of whole 6- (IPv4) or 18-byte (IPv6) entries."""
        try:
            d = bencoding.decode(bytes(payload))
        except BencodeError as exc:
            raise ProtocolError(f"a PEX message is malformed: {exc}") from None
        if not isinstance(d, dict):
            raise ProtocolError("a PEX message is not a dictionary")
        added = _peers(d, b"added", 6)
        added6 = _peers(d, b"added6", 18)
        return cls(
            added=added,
            added_f=_flags(d, b"added.f", len(added)),
            dropped=_peers(d, b"dropped", 6),
            added6=added6,
            added6_f=_flags(d, b"added6.f", len(added6)),
            dropped6=_peers(d, b"dropped6", 18),
        )


def _is_v6(address: Address) -> bool:
    return ":" in address[0]


class PexState:
    """What to tell one peer by PEX, and when (BEP 11, libtorrent's habits).

    Give :meth:`update` the peers we are connected to now (addresses we actually dialled or
    that reached us, with their ``added.f`` flags) and the time; it answers with the message
    to send, or ``None`` when it is too soon or nothing changed. The first message lists the
    current peers; each later one what joined (``added``) and what the peer was told of and
    we have since lost (``dropped``), at most :data:`PEX_MAX_ADDED` of each; the rest wait for
    the next message. The peer itself is never listed.
    """

    def __init__(
        self,
        peer: Address,
        *,
        interval: float = PEX_INTERVAL,
        max_added: int = PEX_MAX_ADDED,
    ) -> None:
        self.peer = peer
        self.interval = interval
        self.max_added = max_added
        self._told: set[Address] = set()
        self._last_sent: float | None = None

    def due(self, now: float) -> bool:
        """Whether a message may go now: the first, or an interval after the last one."""
        return self._last_sent is None or now - self._last_sent >= self.interval

    def update(
        self, connected: Mapping[Address, int] | Iterable[Address], now: float
    ) -> PexMessage | None:
        """The message to send now, recorded as sent; ``None`` if it is not yet time or there
        is nothing new. *connected* maps each address to its flags, or is just addresses."""
        if not self.due(now):
            return None
        flags = dict(connected) if isinstance(connected, Mapping) else dict.fromkeys(connected, 0)
        flags.pop(self.peer, None)
        added = sorted(a for a in flags if a not in self._told)[: self.max_added]
        dropped = sorted(a for a in self._told if a not in flags)[: self.max_added]
        if not added and not dropped:
            return None
        self._last_sent = now
        self._told.update(added)
        self._told.difference_update(dropped)
        v4 = [a for a in added if not _is_v6(a)]
        v6 = [a for a in added if _is_v6(a)]
        return PexMessage(
            added=v4,
            added_f=bytes(flags[a] & 0xFF for a in v4),
            dropped=[a for a in dropped if not _is_v6(a)],
            added6=v6,
            added6_f=bytes(flags[a] & 0xFF for a in v6),
            dropped6=[a for a in dropped if _is_v6(a)],
        )
