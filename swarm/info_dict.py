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
    "V2_ONLY",
    "FileEntry",
    "Info",
    "parse_info",
    "safe_path_components",
]

MAX_PIECE_LENGTH = 1 << 30
MAX_TOTAL_LENGTH = 1 << 50  # 1 PiB: anything bigger is a lie or an attack
MAX_FILES = 1_000_000

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_BITCOMET_PAD = "_____padding_file_"  # BitComet's pad files, before BEP 47 had 'attr'

V2_ONLY = "this is a BitTorrent v2-only torrent; swarm reads v1 and hybrid torrents"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a torrent: its path inside the torrent's folder, length and byte offset,
    and its BEP 47 attributes: a pad file (``p``: zeros that align the next file to a piece
    boundary, never on disk), executable (``x``), hidden (``h``), a symlink (``l``, with
    its ``symlink path``: it takes no bytes of the torrent and swarm never creates it)."""

    path: tuple[str, ...]
    length: int
    offset: int
    padding: bool = False
    executable: bool = False
    hidden: bool = False
    symlink: tuple[str, ...] | None = None  # the target, relative to the torrent's folder

    @property
    def path_str(self) -> str:
        return "/".join(self.path)

    def summary(self) -> dict[str, Any]:
        """How ``swarm info --json`` shows it: path, length, and its attributes if any."""
        out: dict[str, Any] = {"path": self.path_str, "length": self.length}
        if self.executable:
            out["executable"] = True
        if self.hidden:
            out["hidden"] = True
        if self.symlink is not None:
            out["symlink"] = "/".join(self.symlink)
        return out

    @property
    def on_disk(self) -> bool:
        """Whether the file exists on disk: not a pad file, not a symlink."""
        return not self.padding and self.symlink is None


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
    if info.get(b"meta version") == 2 and b"pieces" not in info:
        # BEP 52 alone (no v1 part to read a hybrid torrent by): say what it is, once.
        raise MetainfoError(V2_ONLY)
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
        attr = _attr(info)  # BEP 47 lets a single file's attributes stand in 'info'
        if "p" in attr or "l" in attr:
            raise MetainfoError("a single-file torrent's file cannot be a pad file or a symlink")
        files = [FileEntry((name,), length, 0, executable="x" in attr, hidden="h" in attr)]
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
        attr = _attr(entry)
        length = _int(entry, b"length", f"{what}.length")
        _check_length(length, f"{what}.length")
        symlink = _symlink(entry, what) if "l" in attr else None
        if "l" in attr:
            length = 0  # a symlink takes no bytes of the torrent, whatever it says (libtorrent)
        padding = "p" in attr
        path_raw = entry.get(b"path.utf-8", entry.get(b"path"))
        if path_raw is None and padding:
            path_raw = [b".pad", str(length).encode()]  # a pad file needs no path (libtorrent)
        if path_raw is None:
            raise MetainfoError(f"'{what}.path' is missing")
        path = safe_path_components(path_raw, what)
        padding = padding or any(p.startswith(_BITCOMET_PAD) for p in path)
        full = (name, *path)
        if not padding:  # pad files share names (.pad/N): they are never on disk
            if full in seen:
                raise MetainfoError(f"'{what}': duplicate file path {'/'.join(path)!r}")
            seen.add(full)
        link = None if padding else symlink
        files.append(FileEntry(full, length, offset, padding, "x" in attr, "h" in attr, link))
        offset += length
        if offset > MAX_TOTAL_LENGTH:
            raise MetainfoError("the torrent's total length is absurdly large")
    return files


def _attr(entry: dict[bytes, Any]) -> str:
    """BEP 47 ``attr``: its letters (unknown ones ignored, a value of the wrong type too)."""
    attr = entry.get(b"attr", b"")
    return attr.decode("ascii", "replace") if isinstance(attr, bytes) else ""


def _symlink(entry: dict[bytes, Any], what: str) -> tuple[str, ...] | None:
    """A symlink's ``symlink path``, or None when it has none or it is not a list of strings
    (then, as libtorrent does, the entry is an empty regular file). Not checked as a path:
    swarm never creates the link, it only names its target in a log line."""
    target = entry.get(b"symlink path")
    if not isinstance(target, list) or not all(isinstance(t, bytes) for t in target):
        return None
    return tuple(_text(t, f"{what}.symlink path") for t in target)


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
