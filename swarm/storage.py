"""Pieces on disk: maps (piece, offset, length) onto the torrent's files, reads blocks, writes
verified pieces, checks existing data, and presents files only once they are complete.

While a download runs, each file lives under its name plus ``.part``; when every piece is
verified the files are renamed to their real names. A small resume file (``.NAME.resume`` in
the output folder) records which pieces were verified and the sizes and mtimes of the files,
so a restart can trust it instead of hashing everything again, and the peers it knew, so a
restart can dial them before (or without) any tracker.

BEP 47: a pad file's bytes are zeros that only align the next file to a piece boundary. They
are never on disk: read (to upload or to check a piece) they are zeros, written they are
dropped, and no ``.pad`` file or folder is created, so a padded torrent seeds from the original
folder. A symlink entry (``l``) takes no bytes and is never created (a log line says so); an
executable one (``x``) gets its execute bits when the download is finished.

Every method here is blocking; the session calls them from worker threads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from swarm.errors import StorageError, UsageError
from swarm.metainfo import Torrent
from swarm.peer_directory import Address, addresses_from

log = logging.getLogger(__name__)

PART = ".part"


@dataclass(frozen=True, slots=True)
class Span:
    """A slice of one file that holds part of a piece."""

    file_index: int
    file_offset: int
    length: int


def check_folder(out_dir: Path) -> None:
    """:class:`UsageError` (``X is not a folder``) when *out_dir*, or the nearest of its
    parents that exists, is not a folder: the user's path cannot be an output folder. Checked
    before anything is created."""
    there = Path(out_dir)
    while there != there.parent and not os.path.lexists(there):
        there = there.parent
    if not there.is_dir():
        raise UsageError(f"{there} is not a folder")


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _make_executable(path: Path) -> None:
    """BEP 47 ``x``: execute bits wherever the file is readable (``chmod +x`` under the usual
    umask), as a finished download's executable file is."""
    mode = path.stat().st_mode
    path.chmod(mode | (mode & 0o444) >> 2)


class Storage:
    """The files of one torrent under *root* (the output folder for a download, or the folder
    that holds the data to seed)."""

    def __init__(self, torrent: Torrent, root: str | Path) -> None:
        self.torrent = torrent
        self.root = Path(root)
        self.final_paths = [self.root.joinpath(*f.path) for f in torrent.files]
        # The files that are on disk: not pad files, not symlinks (BEP 47).
        self.disk_files = [i for i, f in enumerate(torrent.files) if f.on_disk]
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()
        self.complete_on_disk = False  # files carry their real names
        self.writable = False
        self._piece_spans: dict[int, list[Span]] = {}
        self._inspecting: list[Path] | None = None  # the paths read by inspect()

    # -- layout --------------------------------------------------------------------------

    def spans(self, piece: int, begin: int = 0, length: int | None = None) -> list[Span]:
        """The file slices that hold *length* bytes of *piece* starting at *begin*."""
        t = self.torrent
        if length is None:
            length = t.piece_size(piece) - begin
        start = piece * t.piece_length + begin
        end = start + length
        out: list[Span] = []
        for i, f in enumerate(t.files):
            if f.length == 0 or f.offset >= end:
                if f.offset >= end:
                    break
                continue
            lo, hi = max(start, f.offset), min(end, f.offset + f.length)
            if lo < hi:
                out.append(Span(i, lo - f.offset, hi - lo))
        return out

    def path_for(self, index: int) -> Path:
        if self._inspecting is not None:
            return self._inspecting[index]
        p = self.final_paths[index]
        return p if self.complete_on_disk else p.with_name(p.name + PART)

    def part_path(self, index: int) -> Path:
        p = self.final_paths[index]
        return p.with_name(p.name + PART)

    # -- what is there before we touch anything --------------------------------------------

    def inspect(self, on_progress: Callable[[int, int], None] | None = None) -> list[bool]:
        """Check every piece against the files as they stand (each at its real name if it is
        there, else its .part), read-only, before anything is renamed, created or cut."""
        self.close()
        self._inspecting = [
            p if p.is_file() or not self.part_path(i).is_file() else self.part_path(i)
            for i, p in enumerate(self.final_paths)
        ]
        self.writable, self.complete_on_disk = False, False
        try:
            return self.check_all(on_progress)
        finally:
            self.close()
            self._inspecting = None

    def pieces_of_files(self, files: set[int]) -> list[int]:
        """The pieces that hold bytes of any of the files numbered in *files*."""
        t = self.torrent
        return [i for i in range(t.num_pieces) if any(s.file_index in files for s in self.spans(i))]

    def reopen_for_repair(self) -> None:
        """Files complete in size but with bad pieces go back to their .part names, writable,
        so the bad pieces can be fetched again (a repair, or a file that was not ours)."""
        if not self.complete_on_disk:
            return
        self.close()
        try:
            for i in self.disk_files:
                self.final_paths[i].replace(self.part_path(i))
        except OSError as exc:
            raise StorageError(f"cannot rename {exc.filename}: {_strerror(exc)}") from None
        self.complete_on_disk = False
        self.writable = True

    # -- opening -------------------------------------------------------------------------

    def open_for_seeding(self) -> None:
        """Use the complete files as they are (read-only)."""
        self.complete_on_disk = True
        self.writable = False
        self._say_symlinks(logging.INFO)
        for i in self.disk_files:
            f, p = self.torrent.files[i], self.final_paths[i]
            if not p.is_file():
                kind = "is not a regular file" if p.exists() else "is missing"
                raise StorageError(f"{p} {kind}; it must hold the torrent's data to seed it")
            size = p.stat().st_size
            if size != f.length:
                raise StorageError(
                    f"{p} is {size} bytes but the torrent says {f.length}: not the same data"
                )

    def open_for_download(self) -> None:
        """Prepare the output folder: real names if the data is complete already, otherwise
        ``.part`` files (created sparse at full length)."""
        self.writable = True
        self._say_symlinks(logging.WARNING)  # the user looks for the link: say where it went
        files = self.torrent.files
        finals_ok = all(
            self.final_paths[i].is_file() and self.final_paths[i].stat().st_size == files[i].length
            for i in self.disk_files
        )
        self.complete_on_disk = finals_ok
        if finals_ok:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for i in self.disk_files:
                f, p = files[i], self.final_paths[i]
                part = p.with_name(p.name + PART)
                part.parent.mkdir(parents=True, exist_ok=True)
                if p.is_dir() or part.is_dir():
                    raise StorageError(f"{p} is a folder; the torrent needs a file there")
                if not part.exists() and p.is_file():
                    # A file with the real name but the wrong size: keep what it has.
                    p.rename(part)
                fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    if os.fstat(fd).st_size != f.length:
                        os.ftruncate(fd, f.length)
                except OSError as exc:
                    # An fd-based call's error names no file; name the one it was for.
                    exc.filename = str(part)
                    raise
                finally:
                    os.close(fd)
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(
                f"cannot prepare {exc.filename or self.root}: {_strerror(exc)}"
            ) from None

    def _fd(self, index: int) -> int:
        fd = self._fds.get(index)
        if fd is None:
            with self._lock:
                fd = self._fds.get(index)
                if fd is None:
                    flags = (
                        os.O_RDWR if self.writable and not self.complete_on_disk else os.O_RDONLY
                    )
                    try:
                        fd = os.open(self.path_for(index), flags)
                    except OSError as exc:
                        raise StorageError(
                            f"cannot open {self.path_for(index)}: {_strerror(exc)}"
                        ) from None
                    self._fds[index] = fd
        return fd

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fds.clear()

    # -- reading and writing -----------------------------------------------------------------

    def read(self, piece: int, begin: int = 0, length: int | None = None) -> bytes:
        """Read bytes of a piece (a block, or the whole piece)."""
        parts = []
        for s in self.spans(piece, begin, length):
            if self.torrent.files[s.file_index].padding:
                parts.append(bytes(s.length))  # BEP 47: a pad file is zeros, never on disk
                continue
            try:
                data = os.pread(self._fd(s.file_index), s.length, s.file_offset)
            except OSError as exc:
                raise StorageError(
                    f"cannot read {self.path_for(s.file_index)}: {_strerror(exc)}"
                ) from None
            if len(data) != s.length:
                raise StorageError(
                    f"{self.path_for(s.file_index)} is shorter than the torrent says"
                )
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def write_piece(self, piece: int, data: bytes | bytearray | memoryview) -> None:
        """Write a verified piece."""
        view = memoryview(data)
        pos = 0
        for s in self.spans(piece):
            if self.torrent.files[s.file_index].padding:
                pos += s.length  # a pad file's bytes are never written (BEP 47)
                continue
            chunk = view[pos : pos + s.length]
            fd = self._fd(s.file_index)
            try:
                written = 0
                while written < s.length:
                    written += os.pwrite(fd, chunk[written:], s.file_offset + written)
            except OSError as exc:
                raise StorageError(
                    f"cannot write {self.path_for(s.file_index)}: {_strerror(exc)}"
                ) from None
            pos += s.length

    def verify_piece(self, piece: int) -> bool:
        """Whether the piece on disk matches its SHA-1."""
        try:
            data = self.read(piece)
        except StorageError:
            return False
        return hashlib.sha1(data).digest() == self.torrent.piece_hashes[piece]

    def check_all(
        self, on_progress: Callable[[int, int], None] | None = None, threads: int = 2
    ) -> list[bool]:
        """Hash every piece on disk; the result says which pieces are good."""
        n = self.torrent.num_pieces
        have = [False] * n
        done = 0
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="check") as pool:
            for i, ok in enumerate(pool.map(self.verify_piece, range(n))):
                have[i] = ok
                done += 1
                if on_progress and (done % 16 == 0 or done == n):
                    on_progress(done, n)
        return have

    # -- finishing -----------------------------------------------------------------------

    def finalize(self) -> None:
        """All pieces are verified: flush, and give the files their real names."""
        if self.complete_on_disk:
            return
        with self._lock:
            for fd in self._fds.values():
                try:
                    os.fsync(fd)
                except OSError as exc:
                    raise StorageError(f"cannot flush data to disk: {_strerror(exc)}") from None
        self.close()
        try:
            for i in self.disk_files:
                self.part_path(i).replace(self.final_paths[i])
                if self.torrent.files[i].executable:
                    _make_executable(self.final_paths[i])
        except OSError as exc:
            raise StorageError(f"cannot rename {exc.filename}: {_strerror(exc)}") from None
        self.complete_on_disk = True
        self.writable = False

    def _say_symlinks(self, level: int) -> None:
        for f in self.torrent.files:
            if f.symlink is not None:
                # Never created: a link's target could lie outside the output folder.
                target = "/".join(f.symlink)
                log.log(level, "not creating symlink %s -> %s (BEP 47)", f.path_str, target)

    # -- fast resume ---------------------------------------------------------------------

    @property
    def resume_path(self) -> Path:
        return self.root / f".{self.torrent.info_hash_hex}.resume"

    def _file_stamps(self) -> list[list[int]]:
        out = []
        for i in self.disk_files:
            st = self.path_for(i).stat()
            out.append([st.st_size, st.st_mtime_ns])
        return out

    def save_resume(self, have: list[bool], peers: Sequence[Address] = ()) -> None:
        """Record the verified pieces with the files' sizes and mtimes, and *peers* to dial
        again (atomically)."""
        if not self.writable:
            return
        try:
            state = {
                "info_hash": self.torrent.info_hash_hex,
                "have": "".join("1" if h else "0" for h in have),
                "files": self._file_stamps(),
                "peers": [list(a) for a in peers],
            }
            tmp = self.resume_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            tmp.replace(self.resume_path)
        except OSError as exc:
            log.debug("cannot save resume data: %s", exc)
            # A full disk leaves a truncated temporary file behind: do not litter.
            self.resume_path.with_suffix(".tmp").unlink(missing_ok=True)

    def _resume_state(self) -> dict[str, object] | None:
        """The resume file's object if it is this torrent's, else None (missing, damaged)."""
        try:
            state = json.loads(self.resume_path.read_text())
        except (OSError, ValueError, RecursionError):  # RecursionError: "[[[[..." nested deep
            return None
        same = isinstance(state, dict) and state.get("info_hash") == self.torrent.info_hash_hex
        return state if same else None

    def load_resume(self) -> list[bool] | None:
        """The verified pieces from the resume file, if it matches the files as they are."""
        state = self._resume_state()
        try:
            if state is None or state.get("files") != self._file_stamps():
                return None
        except OSError:  # a file gone since
            return None
        bits = state.get("have")
        if not isinstance(bits, str) or len(bits) != self.torrent.num_pieces:
            return None
        return [c == "1" for c in bits]

    def load_resume_peers(self) -> list[Address]:
        """The peers saved with the resume data (whatever the files hold now); [] if none."""
        state = self._resume_state()
        return [] if state is None else addresses_from(state.get("peers"))

    def remove_resume(self) -> None:
        try:
            self.resume_path.unlink(missing_ok=True)
        except OSError:
            pass
