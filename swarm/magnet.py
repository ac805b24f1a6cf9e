"""Magnet URIs (BEP 9): parse one into a :class:`Magnet`, build one back with :meth:`Magnet.uri`.

Pure: no I/O. The query is decoded by :mod:`urllib.parse` alone (``+`` is a space, as in
libtorrent). Keys are matched without regard to case, and the numbered forms of the magnet
draft (``xt.1``, ``tr.2``) count as ``xt`` and ``tr``. A malformed ``x.pe`` peer is skipped,
as libtorrent does; anything swarm does not use (``so``, ``xl``, a second ``urn`` beside the
btih one, ...) is kept raw in :attr:`Magnet.extra`, so a magnet built back loses nothing.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import string
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from swarm.errors import MagnetError

__all__ = ["Magnet", "MagnetError", "parse_magnet", "without_web_seeds"]

PREFIX = "magnet:?"
BTIH = "urn:btih:"
BTMH = "urn:btmh:"
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_SHOWN = 60  # a value quoted in an error message is cut to this many characters


@dataclass(slots=True)
class Magnet:
    """What a magnet URI names: an info-hash, and hints for finding the torrent's peers.

    ``trackers``, ``web_seeds`` and ``peers`` keep the URI's order with repeats dropped;
    ``extra`` holds every other ``(key, value)`` pair, decoded, in order.
    """

    info_hash: bytes
    display_name: str | None = None
    trackers: list[str] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)
    web_seeds: list[str] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.info_hash) != 20:
            raise MagnetError(f"an info-hash is 20 bytes, not {len(self.info_hash)}")
        for host, port in self.peers:
            if not 1 <= port <= 65535:
                raise MagnetError(f"peer {host} has port {port}, out of range (1-65535)")

    @property
    def info_hash_hex(self) -> str:
        return self.info_hash.hex()

    def uri(self) -> str:
        """The magnet URI: ``xt`` (hex), ``dn``, each ``tr``, ``ws``, ``x.pe``, then the rest."""
        parts = [f"xt={BTIH}{self.info_hash_hex}"]
        if self.display_name:
            parts.append("dn=" + urllib.parse.quote(self.display_name))
        parts += ["tr=" + urllib.parse.quote(url, safe="") for url in self.trackers]
        parts += ["ws=" + urllib.parse.quote(url, safe="") for url in self.web_seeds]
        # brackets stay: libtorrent (2.0) reads x.pe without percent-decoding it
        parts += ["x.pe=" + urllib.parse.quote(format_peer(p), safe=":[]") for p in self.peers]
        parts += [
            urllib.parse.quote(k, safe=".") + "=" + urllib.parse.quote(v, safe=":,")
            for k, v in self.extra
        ]
        return PREFIX + "&".join(parts)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description (what ``swarm info --json MAGNET`` prints)."""
        return {
            "info_hash": self.info_hash_hex,
            "name": self.display_name,
            "announce": list(self.trackers),
            "peers": [format_peer(p) for p in self.peers],
            "url_list": list(self.web_seeds),
            "extra": [list(kv) for kv in self.extra],
            "magnet": self.uri(),
        }


def format_peer(peer: tuple[str, int]) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_magnet(text: str) -> bool:
    """Whether *text* looks like a magnet URI (so a CLI argument is not taken for a path)."""
    return text.strip()[: len(PREFIX)].lower() == PREFIX


def parse_magnet(uri: str) -> Magnet:
    """Parse a magnet URI; :class:`MagnetError` with a one-line message if it names no v1
    torrent (no ``xt=urn:btih:``, a malformed or a second, different info-hash)."""
    text = uri.strip()
    if not is_magnet(text):
        raise MagnetError(f"not a magnet URI (it should start with {PREFIX}): {_show(text)}")
    pairs = urllib.parse.parse_qsl(text[len(PREFIX) :], keep_blank_values=True)
    hashes: list[bytes] = []
    topics: list[str] = []
    name: str | None = None
    trackers: list[str] = []
    peers: list[tuple[str, int]] = []
    web_seeds: list[str] = []
    extra: list[tuple[str, str]] = []
    for key, value in pairs:
        k = key.lower()
        if k == "xt" or k.startswith("xt."):
            topics.append(value)
            if value[: len(BTIH)].lower() == BTIH:
                hashes.append(_info_hash(value[len(BTIH) :]))
            else:
                extra.append((key, value))
        elif k == "dn":
            name = name or value or None  # the first non-empty one
        elif k == "tr" or k.startswith("tr."):
            _add(trackers, value)
        elif k == "ws":
            _add(web_seeds, value)
        elif k == "x.pe":
            peer = parse_peer(value)
            if peer is not None and peer not in peers:
                peers.append(peer)
        else:
            extra.append((key, value))
    if not topics:
        raise MagnetError("the magnet has no xt (exact topic): it names no torrent")
    if not hashes:
        if any(t[: len(BTMH)].lower() == BTMH for t in topics):
            raise MagnetError("v2 magnets (xt=urn:btmh:, a multihash) are not supported")
        raise MagnetError(f"unknown xt {_show(topics[0])}: swarm needs xt=urn:btih:<info-hash>")
    if len(set(hashes)) > 1:
        shown = ", ".join(h.hex() for h in dict.fromkeys(hashes))
        raise MagnetError(f"the magnet names several different info-hashes: {shown}")
    return Magnet(hashes[0], name, trackers, peers, web_seeds, extra)


def _info_hash(text: str) -> bytes:
    """A btih value: 40 hex digits or 32 base32 letters (RFC 4648), either case."""
    if len(text) == 40:
        if not all(c in string.hexdigits for c in text):
            raise MagnetError(f"info-hash {_show(text)} is not hex")
        return bytes.fromhex(text)
    if len(text) == 32:
        try:
            digest = base64.b32decode(text, casefold=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != 20:  # padding ('=') inside 32 letters decodes to fewer bytes
            raise MagnetError(f"info-hash {_show(text)} is not base32")
        return digest
    raise MagnetError(
        f"info-hash {_show(text)} has {len(text)} characters: it should be 40 hex or 32 base32"
    )


def parse_peer(text: str) -> tuple[str, int] | None:
    """An ``x.pe`` value: ``ipv4:port``, ``[ipv6]:port`` or ``hostname:port``; None if it is
    malformed (no port, a port out of range, a host that is no address or name)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        return None
    port = int(port_text)
    if not 1 <= port <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), port
        except ValueError:
            return None
    if all(c in "0123456789." for c in host):
        try:
            return str(ipaddress.IPv4Address(host)), port
        except ValueError:
            return None
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return None
    return host, port


def _add(urls: list[str], url: str) -> None:
    if url and url not in urls:
        urls.append(url)


def _show(text: str) -> str:
    """*text* quoted for a one-line message (repr escapes a newline), cut when long."""
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def without_web_seeds(uri: str) -> str:
    """The magnet URI *uri* without its web seeds (``ws=``), for a fetch told not to use them
    (:class:`MagnetError` if it is not a magnet)."""
    magnet = parse_magnet(uri)
    magnet.web_seeds = []
    return magnet.uri()
