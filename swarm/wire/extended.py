"""BEP 10 (extension protocol): the extended handshake, the dictionary of message id 20/0."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from swarm import bencoding
from swarm.errors import BencodeError, ProtocolError

__all__ = ["UT_METADATA", "UT_METADATA_ID", "UT_PEX", "UT_PEX_ID", "ExtendedHandshake", "yourip"]

UT_METADATA = "ut_metadata"  # BEP 9
UT_PEX = "ut_pex"  # BEP 11
UT_METADATA_ID = 3
"""The id we ask peers to send ut_metadata messages under (our handshake's ``m``)."""
UT_PEX_ID = 1
"""The id we ask peers to send ut_pex messages under."""

_KNOWN_KEYS = frozenset({b"m", b"v", b"p", b"reqq", b"yourip", b"metadata_size"})


@dataclass(frozen=True, slots=True)
class ExtendedHandshake:
    """The BEP 10 handshake dictionary, sent as ``Extended(0, handshake.encode())``.

    ``m`` maps extension names to the ids the sender wants to receive them under (0 means
    disabled); ``extra`` keeps every other key, raw, so nothing a peer says is lost.
    """

    m: dict[str, int] = field(default_factory=dict)
    v: str | None = None
    p: int | None = None
    reqq: int | None = None
    yourip: bytes | None = None
    metadata_size: int | None = None
    extra: dict[bytes, Any] = field(default_factory=dict)  # bencoded values, any shape

    def encode(self) -> bytes:
        """The bencoded dictionary (the payload of the extended message with id 0)."""
        d: dict[bytes, Any] = dict(self.extra)
        d[b"m"] = {name.encode(): ext_id for name, ext_id in self.m.items()}
        if self.v is not None:
            d[b"v"] = self.v.encode()
        if self.p is not None:
            d[b"p"] = self.p
        if self.reqq is not None:
            d[b"reqq"] = self.reqq
        if self.yourip is not None:
            d[b"yourip"] = self.yourip
        if self.metadata_size is not None:
            d[b"metadata_size"] = self.metadata_size
        return bencoding.encode(d)

    @classmethod
    def decode(cls, payload: bytes) -> ExtendedHandshake:
        """Read a handshake dictionary; a key of the wrong type is ignored, as libtorrent does.

        :class:`ProtocolError` if *payload* is not bencoding or not a dictionary.
        """
        try:
            d = bencoding.decode(bytes(payload))
        except BencodeError as exc:
            raise ProtocolError(f"the peer's extended handshake is malformed: {exc}") from None
        if not isinstance(d, dict):
            raise ProtocolError("the peer's extended handshake is not a dictionary")
        raw_m = d.get(b"m")
        m: dict[str, int] = {}
        if isinstance(raw_m, dict):
            for name, ext_id in raw_m.items():
                if isinstance(ext_id, int) and 0 <= ext_id <= 255:
                    m[name.decode("utf-8", "replace")] = ext_id
        v = d.get(b"v")
        yourip = d.get(b"yourip")
        return cls(
            m=m,
            v=v.decode("utf-8", "replace") if isinstance(v, bytes) else None,
            p=_int_in(d.get(b"p"), 1, 65535),
            reqq=_int_in(d.get(b"reqq"), 1, None),
            yourip=yourip if isinstance(yourip, bytes) and len(yourip) in (4, 16) else None,
            metadata_size=_int_in(d.get(b"metadata_size"), 0, None),
            extra={key: value for key, value in d.items() if key not in _KNOWN_KEYS},
        )


def _int_in(value: object, low: int, high: int | None) -> int | None:
    if not isinstance(value, int) or value < low or (high is not None and value > high):
        return None
    return value


def yourip(host: str | None) -> bytes | None:
    """*host*, an IP address, in the form of the handshake's ``yourip``: 4 bytes for IPv4, 16
    for IPv6; None for anything else."""
    if host is None:
        return None
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_pton(family, host)
        except OSError:
            continue
    return None
