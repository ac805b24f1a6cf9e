"""The ``info`` dictionary of a .torrent (BEP 3 v1, BEP 47 pad files): its fields, its file
list, and the path safety of every name in it.

:func:`parse_info` checks everything a hostile or broken ``info`` could get wrong (a name or
path component that would leave the output folder, lengths that do not add up, a piece count
that does not match) and gives an :class:`Info`. :mod:`swarm.metainfo` builds a
:class:`~swarm.metainfo.Torrent` from it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from swarm.errors import MetainfoError

__all__ = [
    "MAX_FILES",
    "MAX_PIECE_LENGTH",
    "MAX_TOTAL_LENGTH",
    "FileEntry",
    "Info",
    "parse_info",
    "safe_path_components",
]

MAX_PIECE_LENGTH = 1 << 30
MAX_TOTAL_LENGTH = 1 << 50  # 1 PiB: anything bigger is a lie or an attack
MAX_FILES = 1_000_000

_DRIVE_RE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a torrent: its path inside the torrent's folder, length and byte offset."""

    path: tuple[str, ...]
    length: int
    offset: int
    padding: bool = False

    @property
    def path_str(self) -> str:
        return "/".join(self.path)


@dataclass(frozen=True, slots=True)
class Info:
    """What a valid ``info`` dictionary says, checked."""

    name: str
    piece_length: int
    piece_hashes: tuple[bytes, ...]
    files: tuple[FileEntry, ...]
    multi_file: bool
    private: bool


def parse_info(info: dict[bytes, Any]) -> Info:
    """Check a decoded ``info`` dictionary; :class:`MetainfoError` names what is wrong."""
    name_raw = info.get(b"name.utf-8", info.get(b"name"))
    if name_raw is None:
        raise MetainfoError("'info.name' is missing")
    name = _text(name_raw, "info.name")
    _check_name(name, "info.name")
    piece_length = _int(info, b"piece length", "info.piece length")
    if piece_length <= 0:
        raise MetainfoError(f"'info.piece length' must be positive, not {piece_length}")
    if piece_length > MAX_PIECE_LENGTH:
        raise MetainfoError(f"'info.piece length' of {piece_length} bytes is absurdly large")
    pieces = info.get(b"pieces")
    if pieces is None:
        raise MetainfoError("'info.pieces' is missing")
    if not isinstance(pieces, bytes):
        raise MetainfoError("'info.pieces' must be a byte string")
    if len(pieces) % 20:
        raise MetainfoError(
            f"'info.pieces' is {len(pieces)} bytes long, not a multiple of 20 (SHA-1 size)"
        )
    private_value = info.get(b"private", 0)
    private = isinstance(private_value, int) and private_value == 1

    has_length = b"length" in info
    has_files = b"files" in info
    if has_length and has_files:
        raise MetainfoError("'info' has both 'length' and 'files'")
    if has_length:
        length = _int(info, b"length", "info.length")
        _check_length(length, "info.length")
        files = [FileEntry(path=(name,), length=length, offset=0)]
        multi = False
    elif has_files:
        files = _parse_files(name, info[b"files"])
        multi = True
    else:
        raise MetainfoError("'info' has neither 'length' nor 'files'")

    total = files[-1].offset + files[-1].length
    if total == 0:
        raise MetainfoError("the torrent holds no data (total length 0)")
    expected = math.ceil(total / piece_length)
    count = len(pieces) // 20
    if count != expected:
        raise MetainfoError(
            f"'info.pieces' holds {count} hashes but {total} bytes in pieces of "
            f"{piece_length} need {expected}"
        )
    return Info(
        name=name,
        piece_length=piece_length,
        piece_hashes=tuple(pieces[i : i + 20] for i in range(0, len(pieces), 20)),
        files=tuple(files),
        multi_file=multi,
        private=private,
    )


def _parse_files(name: str, raw_files: object) -> list[FileEntry]:
    """The ``files`` list of a multi-file torrent, each path under the folder *name*."""
    if not isinstance(raw_files, list) or not raw_files:
        raise MetainfoError("'info.files' must be a non-empty list")
    if len(raw_files) > MAX_FILES:
        raise MetainfoError(f"'info.files' lists {len(raw_files)} files, too many")
    files: list[FileEntry] = []
    offset = 0
    seen: set[tuple[str, ...]] = set()
    for i, entry in enumerate(raw_files):
        what = f"info.files[{i}]"
        if not isinstance(entry, dict):
            raise MetainfoError(f"'{what}' must be a dictionary")
        length = _int(entry, b"length", f"{what}.length")
        _check_length(length, f"{what}.length")
        path_raw = entry.get(b"path.utf-8", entry.get(b"path"))
        if path_raw is None:
            raise MetainfoError(f"'{what}.path' is missing")
        path = safe_path_components(path_raw, what)
        attr = entry.get(b"attr", b"")
        padding = isinstance(attr, bytes) and b"p" in attr
        full = (name, *path)
        if full in seen and not padding:
            raise MetainfoError(f"'{what}': duplicate file path {'/'.join(path)!r}")
        seen.add(full)
        files.append(FileEntry(path=full, length=length, offset=offset, padding=padding))
        offset += length
        if offset > MAX_TOTAL_LENGTH:
            raise MetainfoError("the torrent's total length is absurdly large")
    return files


def safe_path_components(parts: object, what: str) -> tuple[str, ...]:
    """Check that a list of path components stays inside the output folder."""
    if not isinstance(parts, list) or not parts:
        raise MetainfoError(f"{what}: a file path must be a non-empty list of names")
    out: list[str] = []
    for raw in parts:
        name = _text(raw, f"{what} path component")
        _check_name(name, what)
        out.append(name)
    return tuple(out)


def _check_name(name: str, what: str) -> None:
    shown = repr(name)
    if name == "":
        raise MetainfoError(f"{what}: empty path component")
    if name in (".", ".."):
        raise MetainfoError(f"{what}: path component {shown} would leave the output folder")
    if "\x00" in name:
        raise MetainfoError(f"{what}: path component {shown} contains a NUL byte")
    if "/" in name or "\\" in name:
        raise MetainfoError(f"{what}: path component {shown} contains a path separator")
    if _DRIVE_RE.match(name):
        raise MetainfoError(f"{what}: path component {shown} looks like a drive letter")


def _text(value: object, what: str) -> str:
    if not isinstance(value, bytes):
        raise MetainfoError(f"'{what}' must be a string")
    return value.decode("utf-8", errors="replace")


def _int(info: dict[bytes, Any], key: bytes, what: str) -> int:
    if key not in info:
        raise MetainfoError(f"'{what}' is missing")
    value = info[key]
    if not isinstance(value, int):
        raise MetainfoError(f"'{what}' must be an integer")
    return value


def _check_length(length: int, what: str) -> None:
    if length < 0:
        raise MetainfoError(f"'{what}' is negative ({length})")
    if length > MAX_TOTAL_LENGTH:
        raise MetainfoError(f"'{what}' of {length} bytes is absurdly large")
