"""Torrent metainfo (.torrent files): parse, validate and build (BEP 3 v1, 12, 19, 27).

:func:`parse` turns the bytes of a .torrent file into a :class:`Torrent`, checking everything
a hostile or broken file could get wrong, once: the ``info`` dictionary (its file list and
the safety of every path in it) in :mod:`swarm.info_dict`, the rest (trackers, web seeds,
descriptive keys) here. :func:`build_metainfo` does the reverse. The info-hash is taken over
the raw ``info`` bytes (see :mod:`swarm.bencoding`).
"""

from __future__ import annotations

import hashlib
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm import bencoding
from swarm.dht_nodes import nodes_of
from swarm.errors import BencodeError, MetainfoError, UsageError
from swarm.info_dict import (
    MAX_FILES,
    MAX_PIECE_LENGTH,
    MAX_TOTAL_LENGTH,
    FileEntry,
    parse_info,
    safe_path_components,
)
from swarm.magnet import Magnet

__all__ = [
    "MAX_FILES",
    "MAX_PIECE_LENGTH",
    "MAX_TORRENT_SIZE",
    "MAX_TOTAL_LENGTH",
    "FileEntry",
    "Torrent",
    "build_metainfo",
    "check_tracker_url",
    "check_web_seed_url",
    "from_info",
    "load",
    "parse",
    "safe_path_components",
    "tracker_url_problem",
]

MAX_TORRENT_SIZE = 10 * 1024 * 1024
"""Default bound on the size of a .torrent file we are willing to read."""
_Urls = list[str] | tuple[str, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Torrent:
    """A parsed, validated v1 torrent (or a hybrid's v1 part); its *files* include BEP 47 pad
    files (:attr:`FileEntry.padding`: zeros in the pieces, never on disk)."""

    info_hash: bytes
    name: str
    piece_length: int
    piece_hashes: tuple[bytes, ...]
    files: tuple[FileEntry, ...]
    multi_file: bool
    announce_tiers: tuple[tuple[str, ...], ...] = ()
    url_list: tuple[str, ...] = ()
    private: bool = False
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None
    raw_info: bytes = b""
    extra: dict[bytes, Any] = field(default_factory=dict)
    nodes = property(nodes_of, doc="BEP 5 ``nodes``: DHT nodes to bootstrap from (host, port).")

    @property
    def length(self) -> int:
        """Total length of the torrent's data in bytes."""
        last = self.files[-1]
        return last.offset + last.length

    @property
    def num_pieces(self) -> int:
        return len(self.piece_hashes)

    @property
    def info_hash_hex(self) -> str:
        return self.info_hash.hex()

    @property
    def trackers(self) -> list[str]:
        """Every tracker URL, tiers in order (``announce`` alone when there is no list)."""
        return [url for tier in self.announce_tiers for url in tier]

    def piece_size(self, index: int) -> int:
        """Length of piece *index* (the last one may be short)."""
        if not 0 <= index < self.num_pieces:
            raise IndexError(f"piece {index} out of range")
        if index == self.num_pieces - 1:
            return self.length - index * self.piece_length
        return self.piece_length

    def magnet(self) -> str:
        """A magnet URI (BEP 9 form) naming this torrent, its trackers and web seeds."""
        trackers = list(dict.fromkeys(self.trackers))  # a URL in two tiers is named once
        web_seeds = list(dict.fromkeys(self.url_list))
        return Magnet(self.info_hash, self.name, trackers, web_seeds=web_seeds).uri()

    def to_bytes(self) -> bytes:
        """The .torrent file's bytes; the ``info`` bytes are written exactly as parsed."""
        meta: dict[bytes, Any] = dict(self.extra)
        meta[b"info"] = bencoding.Raw(self.raw_info)
        if self.announce_tiers:
            meta[b"announce"] = self.announce_tiers[0][0].encode()
            if len(self.announce_tiers) > 1 or len(self.announce_tiers[0]) > 1:
                meta[b"announce-list"] = [
                    [url.encode() for url in tier] for tier in self.announce_tiers
                ]
        if self.url_list:
            meta[b"url-list"] = [url.encode() for url in self.url_list]
        if self.comment is not None:
            meta[b"comment"] = self.comment.encode()
        if self.created_by is not None:
            meta[b"created by"] = self.created_by.encode()
        if self.creation_date is not None:
            meta[b"creation date"] = self.creation_date
        return _encode(meta)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description (what ``swarm info --json`` prints)."""
        return {
            "info_hash": self.info_hash_hex,
            "name": self.name,
            "length": self.length,
            "piece_length": self.piece_length,
            "pieces": self.num_pieces,
            "files": [f.summary() for f in self.files if not f.padding],
            "pad_files": sum(1 for f in self.files if f.padding),
            "announce": self.trackers,
            "announce_tiers": [list(t) for t in self.announce_tiers],
            "private": self.private,
            "url_list": list(self.url_list),
            "comment": self.comment,
            "created_by": self.created_by,
            "creation_date": self.creation_date,
            "multi_file": self.multi_file,
            "magnet": self.magnet(),
        }


# -- parsing -------------------------------------------------------------------------------


def load(path: str | Path, max_size: int = MAX_TORRENT_SIZE) -> Torrent:
    """Read and parse a .torrent file, refusing files larger than *max_size*."""
    p = Path(path)
    try:
        if p.is_dir():
            raise MetainfoError(f"{p}: is a folder, not a .torrent file")
        size = p.stat().st_size
        if size > max_size:
            raise MetainfoError(
                f"{p}: {size} bytes is larger than the {max_size}-byte limit for a .torrent file"
            )
        with open(p, "rb") as f:
            data = f.read(max_size + 1)  # a stream has no size to check beforehand
        if len(data) > max_size:
            raise MetainfoError(f"{p}: larger than the {max_size}-byte limit for a .torrent file")
    except FileNotFoundError:
        raise MetainfoError(f"{p}: no such file") from None
    except PermissionError:
        raise MetainfoError(f"{p}: permission denied") from None
    except OSError as exc:
        raise MetainfoError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        return parse(data, max_size=max_size)
    except MetainfoError as exc:
        raise MetainfoError(f"{p}: {exc}") from None


def parse(data: bytes, max_size: int = MAX_TORRENT_SIZE) -> Torrent:
    """Parse and validate the bytes of a .torrent file."""
    if len(data) > max_size:
        raise MetainfoError(
            f"{len(data)} bytes is larger than the {max_size}-byte limit for a .torrent file"
        )
    try:
        meta, spans = bencoding.decode_with_spans(data)
    except BencodeError as exc:
        raise MetainfoError(_bencode_problem(data, exc)) from None
    if b"info" not in meta:
        raise MetainfoError("not a torrent: the 'info' dictionary is missing")
    info = meta[b"info"]
    if not isinstance(info, dict):
        raise MetainfoError("not a torrent: 'info' is not a dictionary")
    start, end = spans[b"info"]
    raw_info = data[start:end]
    checked = parse_info(info)
    known = {b"info", b"announce", b"announce-list", b"url-list", b"comment", b"created by"}
    known.add(b"creation date")
    return Torrent(  # the fields in their declared order
        info_hash=hashlib.sha1(raw_info).digest(),
        name=checked.name,
        piece_length=checked.piece_length,
        piece_hashes=checked.piece_hashes,
        files=checked.files,
        multi_file=checked.multi_file,
        announce_tiers=_parse_trackers(meta),
        url_list=_parse_url_list(meta.get(b"url-list")),
        private=checked.private,
        comment=_optional_text(meta, b"comment"),
        created_by=_optional_text(meta, b"created by"),
        creation_date=_optional_int(meta, b"creation date"),
        raw_info=raw_info,
        extra={k: v for k, v in meta.items() if k not in known},
    )


def from_info(info_bytes: bytes, trackers: _Urls = (), *, web_seeds: _Urls = ()) -> Torrent:
    """The torrent of fetched metadata (BEP 9), its info checked as a .torrent's and kept byte
    for byte; a tier per tracker, as libtorrent's ``parse_magnet_uri`` makes them (``tier++``)."""
    tiers, seeds = tuple((u,) for u in dict.fromkeys(trackers) if u), tuple(web_seeds)
    c = parse_info(info if isinstance(info := bencoding.decode(info_bytes), dict) else {})
    fields = (c.name, c.piece_length, c.piece_hashes, c.files, c.multi_file, tiers, seeds)
    sha1 = hashlib.sha1(info_bytes).digest()
    return Torrent(sha1, *fields, private=c.private, raw_info=bytes(info_bytes))


def _bencode_problem(data: bytes, exc: BencodeError) -> str:
    """What is wrong with *data*, which is not a bencoded dictionary: the bencoding's own
    problem, or that it is well-formed but not a dictionary (so not a torrent)."""
    if data[:1] != b"d":  # only a dictionary starts with b"d"
        try:
            bencoding.decode(data)
        except BencodeError:
            pass
        else:
            return "not a torrent: the top level is not a dictionary"
    return str(exc)


def _optional_text(meta: dict[bytes, Any], key: bytes) -> str | None:
    value = meta.get(key)
    # Optional descriptive keys of the wrong type are ignored, as libtorrent does.
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else None


def _optional_int(meta: dict[bytes, Any], key: bytes) -> int | None:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse_trackers(meta: dict[bytes, Any]) -> tuple[tuple[str, ...], ...]:
    tiers: list[tuple[str, ...]] = []
    announce_list = meta.get(b"announce-list")
    if isinstance(announce_list, list):
        # BEP 12: when announce-list is present, announce is ignored.
        for tier in announce_list:
            if not isinstance(tier, list):
                continue
            urls = tuple(u.decode("utf-8", "replace") for u in tier if isinstance(u, bytes) and u)
            if urls:
                tiers.append(urls)
    if not tiers:
        announce = meta.get(b"announce")
        if isinstance(announce, bytes) and announce:
            tiers.append((announce.decode("utf-8", "replace"),))
    return tuple(tiers)


def _parse_url_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, bytes):
        return (value.decode("utf-8", "replace"),) if value else ()
    if isinstance(value, list):
        return tuple(v.decode("utf-8", "replace") for v in value if isinstance(v, bytes) and v)
    return ()


# -- URLs a user gives -----------------------------------------------------------------------

TRACKER_SCHEMES = ("http", "https", "udp")
WEB_SEED_SCHEMES = ("http", "https")


def tracker_url_problem(url: str) -> str | None:
    """Why *url* cannot be a tracker's announce URL, or None when it can: ``http://``,
    ``https://`` or ``udp://`` with a host, and for udp a port (BEP 15 has no default port)."""
    return _url_problem(url, TRACKER_SCHEMES, port_needed=("udp",))


def check_tracker_url(url: str) -> str:
    """*url* if it can be a tracker's announce URL, else :class:`UsageError` (one line)."""
    problem = tracker_url_problem(url)
    if problem:
        raise UsageError(f"bad tracker URL {url!r}: {problem}")
    return url


def check_web_seed_url(url: str) -> str:
    """*url* if a web seed (BEP 19) can be at it: http(s), a host, no #fragment; else UsageError."""
    problem = _url_problem(url, WEB_SEED_SCHEMES, port_needed=())
    problem = problem or ("a #fragment has no place in it" if "#" in url else None)
    if problem:
        raise UsageError(f"bad web seed URL {url!r}: {problem}")
    return url


def _url_problem(url: str, schemes: tuple[str, ...], port_needed: tuple[str, ...]) -> str | None:
    wanted = ", ".join(s + "://" for s in schemes[:-1]) + f" or {schemes[-1]}://"
    if not url:
        return "it is empty"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "it holds a space or a control character"
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        return f"not a URL (it must start with {wanted})"
    if scheme.lower() not in schemes:
        return f"{scheme}:// is not supported (only {wanted})"
    bad_port = "the port is not a number from 1 to 65535"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # an unclosed [IPv6] address
        return "bad host"
    try:
        port = parts.port
    except ValueError:
        return bad_port
    if not parts.hostname:
        return "no host"
    if port == 0:
        return bad_port
    if port is None and scheme.lower() in port_needed:
        return f"a {scheme}:// URL needs a port ({scheme}://HOST:PORT)"
    return None


# -- building ------------------------------------------------------------------------------


def build_metainfo(
    *,
    name: str,
    piece_length: int,
    piece_hashes: list[bytes],
    files: list[tuple[tuple[str, ...], int]] | None = None,
    attrs: list[str] | None = None,
    length: int | None = None,
    trackers: list[list[str]] | None = None,
    url_list: list[str] | None = None,
    private: bool = False,
    comment: str | None = None,
    created_by: str | None = "swarm",
    creation_date: int | None = None,
) -> bytes:
    """Bencode a v1 torrent. Give *length* for a single file, or *files* (paths relative to
    the torrent's folder, with lengths) for a multi-file torrent, and *attrs*, one a file, for
    their BEP 47 ``attr`` (``"p"`` a pad file, ``"x"`` executable; ``""`` none). *trackers*
    is a list of tiers (BEP 12)."""
    info: dict[bytes, Any] = {
        b"name": name.encode(),
        b"piece length": piece_length,
        b"pieces": b"".join(piece_hashes),
    }
    if (files is None) == (length is None):
        raise ValueError("give exactly one of files and length")
    if files is not None:
        info[b"files"] = [
            {b"length": flen, b"path": [part.encode() for part in path]} for path, flen in files
        ]
        for entry, attr in zip(info[b"files"], attrs or [], strict=False):
            if attr:
                entry[b"attr"] = attr.encode()
    else:
        info[b"length"] = length
    if private:
        info[b"private"] = 1
    meta: dict[bytes, Any] = {b"info": info}
    tiers = [tier for tier in (trackers or []) if tier]
    if tiers:
        meta[b"announce"] = tiers[0][0].encode()
        if len(tiers) > 1 or len(tiers[0]) > 1:
            meta[b"announce-list"] = [[u.encode() for u in tier] for tier in tiers]
    if url_list:
        meta[b"url-list"] = [u.encode() for u in url_list]
    if comment:
        meta[b"comment"] = comment.encode()
    if created_by:
        meta[b"created by"] = created_by.encode()
    meta[b"creation date"] = int(time.time()) if creation_date is None else creation_date
    data = _encode(meta)
    parse(data, max_size=max(MAX_TORRENT_SIZE, len(data)))  # what we write, we can read
    return data


def _encode(meta: dict[bytes, Any]) -> bytes:
    try:
        return bencoding.encode(meta)
    except BencodeError as exc:
        raise MetainfoError(str(exc)) from None
