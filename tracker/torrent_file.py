"""What the tracker reads of a .torrent file (BEP 3): its info-hash and its name, to show on
the page at ``/``; nothing else.

The name is only shown (always escaped), never used as a path, so any text is taken, where
swarm's own reader refuses a name with a path separator. The info-hash is SHA-1 over the
``info`` value's bytes exactly as they stand in the file, found by walking the bencoding.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import fastbencode

from tracker.errors import TorrentFileError

__all__ = ["MAX_TORRENT_FILE", "info_hash_and_name", "load"]

MAX_TORRENT_FILE = 16 * 1024 * 1024
"""Larger files are not read."""
_MAX_DEPTH = 64


def _skip(data: bytes, i: int, depth: int = 0) -> int:
    """The index just past the bencoded value at *i* (ValueError if there is none)."""
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    c = data[i : i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        int(data[i + 1 : end])
        return end + 1
    if c in (b"l", b"d"):
        i += 1
        while data[i : i + 1] != b"e":
            if not data[i : i + 1]:
                raise ValueError("truncated")
            i = _skip(data, i, depth + 1)
        return i + 1
    if c.isdigit():
        colon = data.index(b":", i)
        end = colon + 1 + int(data[i:colon])
        if end > len(data):
            raise ValueError("truncated string")
        return end
    raise ValueError(f"unexpected byte at {i}")


def _info_span(data: bytes) -> tuple[int, int]:
    if data[:1] != b"d":
        raise ValueError("the top level is not a dictionary")
    i = 1
    while data[i : i + 1] != b"e":
        key_end = _skip(data, i)
        if data[i : i + 1] in (b"i", b"l", b"d"):
            raise ValueError("a key is not a string")
        key = data[data.index(b":", i) + 1 : key_end]
        value_end = _skip(data, key_end)
        if key == b"info":
            return key_end, value_end
        i = value_end
    raise ValueError("the 'info' dictionary is missing")


def info_hash_and_name(data: bytes) -> tuple[bytes, str]:
    """The info-hash and the name (``name.utf-8`` if given, else ``name``; undecodable bytes
    replaced) of the .torrent *data*; :class:`TorrentFileError` if it is not one."""
    try:
        start, end = _info_span(data)
        info = fastbencode.bdecode(data[start:end])
    except (ValueError, IndexError, TypeError) as exc:
        raise TorrentFileError(f"not a .torrent file: {exc}") from None
    if not isinstance(info, dict):
        raise TorrentFileError("not a .torrent file: 'info' is not a dictionary")
    name = info.get(b"name.utf-8", info.get(b"name", b""))
    if not isinstance(name, bytes):
        raise TorrentFileError("not a .torrent file: 'info.name' is not a string")
    return hashlib.sha1(data[start:end]).digest(), name.decode("utf-8", "replace")


def load(path: Path) -> tuple[bytes, str]:
    """:func:`info_hash_and_name` of the file at *path*."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_TORRENT_FILE + 1)
    except OSError as exc:
        raise TorrentFileError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_TORRENT_FILE:
        raise TorrentFileError(f"{path}: larger than {MAX_TORRENT_FILE} bytes")
    try:
        return info_hash_and_name(data)
    except TorrentFileError as exc:
        raise TorrentFileError(f"{path}: {exc}") from None
