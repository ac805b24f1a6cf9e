"""Web seeds (BEP 19, GetRight style), the pure part: which URLs, which byte ranges, when to ask.

A web seed is an HTTP(S) server holding the torrent's files under their own names. BEP 19 maps
a run of pieces onto HTTP range requests, one per file the run touches; this module plans those
requests (:func:`plan_ranges`, :func:`file_url`), picks the usable URLs out of a torrent's
``url-list`` and a magnet's ``ws=`` (:func:`parse_web_seeds`), and keeps one web seed's health
(:class:`WebSeedHealth`: back-off after errors, dropped for good after too many or after corrupt
data). No I/O: the clock is passed in, the HTTP client is somebody else's job.
"""

from __future__ import annotations

import bisect
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from swarm.errors import UsageError
from swarm.info_dict import FileEntry
from swarm.metainfo import check_web_seed_url

__all__ = [
    "BASE_DELAY_SECONDS",
    "MAX_CORRUPT",
    "MAX_DELAY_SECONDS",
    "MAX_FAILURES",
    "MAX_RETRY_AFTER_SECONDS",
    "FileLayout",
    "FileRange",
    "Problem",
    "WebSeedHealth",
    "WebSeeds",
    "escape_path_element",
    "file_url",
    "parse_web_seeds",
    "plan_ranges",
    "plan_span",
    "range_url",
]

BASE_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 300.0
MAX_FAILURES = 6  # in a row: 2+4+8+16+32 s of waiting first, about a minute
MAX_CORRUPT = 2  # libtorrent bans a single-file web seed on its first bad piece; we allow one more
MAX_RETRY_AFTER_SECONDS = 3600.0  # a server's Retry-After is honoured up to an hour


# -- URLs ------------------------------------------------------------------------------------


def escape_path_element(element: str) -> str:
    """One path element percent-encoded as UTF-8, keeping only RFC 3986's unreserved characters
    (letters, digits, ``-._~``); a ``/`` inside the element is encoded too, so it cannot split
    the element. libtorrent's ``escape_path`` also keeps ``!*()`` (RFC 2396's marks) and encodes
    ``'``; a server decodes either spelling to the same name, so we keep the stricter set."""
    return urllib.parse.quote(element, safe="", encoding="utf-8")


def file_url(base: str, torrent_name: str, path_parts: Sequence[str], multi_file: bool) -> str:
    """The URL of one file of a torrent on the web seed *base* (BEP 19).

    Single-file torrent: a *base* ending in ``/`` names a folder, and the torrent's name
    (encoded) is appended; any other *base* is the file's own URL, used as given (libtorrent
    too takes it as already encoded). Multi-file torrent: *base*, a ``/`` if it lacks one (as
    libtorrent's ``ensure_trailing_slash`` fixes torrents that forgot it), the torrent's name,
    then each element of *path_parts* (the path inside the torrent's folder), each encoded by
    :func:`escape_path_element` and joined with ``/``.
    """
    if not multi_file:
        return base + escape_path_element(torrent_name) if base.endswith("/") else base
    folder = base if base.endswith("/") else base + "/"
    return folder + "/".join(escape_path_element(p) for p in (torrent_name, *path_parts))


# -- ranges ----------------------------------------------------------------------------------


class FileLayout(Protocol):
    """What :func:`plan_ranges` needs of a torrent (a :class:`~swarm.metainfo.Torrent` has it)."""

    @property
    def files(self) -> tuple[FileEntry, ...]: ...

    @property
    def piece_length(self) -> int: ...

    @property
    def num_pieces(self) -> int: ...

    @property
    def length(self) -> int: ...


@dataclass(frozen=True, slots=True)
class FileRange:
    """One HTTP range request: bytes *start* to *end* (inclusive, as in ``Range: bytes=``) of
    file *file_index*. A *padding* file (BEP 47) is not asked for: its bytes are zeros."""

    file_index: int
    start: int
    end: int
    padding: bool = False

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def header(self) -> str:
        """The ``Range`` header's value."""
        return f"bytes={self.start}-{self.end}"


def plan_ranges(layout: FileLayout, first_piece: int, last_piece: int) -> list[FileRange]:
    """The range requests for the whole pieces *first_piece* to *last_piece* (inclusive), in
    order, one per file they touch; zero-length files are skipped. The ranges' bytes, read in
    order (zeros for padding files), are exactly the pieces' bytes."""
    if not 0 <= first_piece <= last_piece < layout.num_pieces:
        raise ValueError(f"pieces {first_piece}-{last_piece} out of range 0-{layout.num_pieces}")
    start = first_piece * layout.piece_length
    return plan_span(layout, start, min((last_piece + 1) * layout.piece_length, layout.length))


def plan_span(layout: FileLayout, start: int, end: int) -> list[FileRange]:
    """The range requests for the torrent's bytes *start* to *end* (exclusive), in order, one
    per file they touch (see :func:`plan_ranges`)."""
    if not 0 <= start < end <= layout.length:
        raise ValueError(f"bytes {start}-{end} out of range 0-{layout.length}")
    files = layout.files
    # The last file that starts at or before *start*; zero-length files share offsets, so
    # walk on from there and skip the empty ones.
    i = max(bisect.bisect_right(files, start, key=lambda f: f.offset) - 1, 0)
    out: list[FileRange] = []
    while i < len(files) and files[i].offset < end:
        f = files[i]
        lo, hi = max(start, f.offset), min(end, f.offset + f.length)
        if lo < hi:
            out.append(FileRange(i, lo - f.offset, hi - f.offset - 1, f.padding))
        i += 1
    return out


def range_url(base: str, torrent_name: str, layout: FileLayout, multi_file: bool, i: int) -> str:
    """The URL on web seed *base* of file *i* of *layout* (its path holds the torrent's name
    first in a multi-file torrent, as :class:`~swarm.info_dict.FileEntry` paths do)."""
    path = layout.files[i].path
    return file_url(base, torrent_name, path[1:] if multi_file else (), multi_file)


# -- which URLs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebSeeds:
    """The usable web seed URLs, in the order given, and one line per URL skipped."""

    urls: tuple[str, ...]
    skipped: tuple[str, ...]


def parse_web_seeds(values: Iterable[str]) -> WebSeeds:
    """From a torrent's ``url-list`` and a magnet's ``ws=`` values: the ``http://`` and
    ``https://`` URLs with a host, each once, in order; the others, each with the reason, for
    one log line each."""
    urls: list[str] = []
    skipped: list[str] = []
    for url in values:
        if url in urls:
            continue
        try:
            check_web_seed_url(url)
        except UsageError as exc:
            skipped.append(f"skipping web seed: {exc}")
            continue
        urls.append(url)
    return WebSeeds(tuple(urls), tuple(skipped))


# -- health ----------------------------------------------------------------------------------


class Problem(Enum):
    """What went wrong with one request to a web seed."""

    HTTP_ERROR = "HTTP error"
    TIMEOUT = "timed out"
    CORRUPT = "corrupt data"


@dataclass(slots=True)
class WebSeedHealth:
    """One web seed's record: whether it may be asked now, and whether it was dropped for good.

    Each failure in a row doubles the wait (2, 4, 8 ... s, capped); a success clears the run.
    After *max_failures* failures in a row, or *max_corrupt* pieces that failed their hash
    check (not reset by success: a server that serves a wrong file once will again), the seed
    is dropped and :attr:`dropped` says why. Times come from the caller's clock.
    """

    url: str
    max_failures: int = MAX_FAILURES
    max_corrupt: int = MAX_CORRUPT
    base_delay: float = BASE_DELAY_SECONDS
    max_delay: float = MAX_DELAY_SECONDS
    failures: int = 0  # in a row
    corrupt: int = 0  # in all
    next_try: float = 0.0
    last_problem: str | None = None
    dropped: str | None = None

    def ready(self, now: float) -> bool:
        """Whether the web seed may be asked now."""
        return self.dropped is None and now >= self.next_try

    def succeeded(self) -> None:
        """A request came back whole (its pieces are yet to be checked)."""
        self.failures = 0
        self.next_try = 0.0

    def failed(
        self, now: float, problem: Problem, detail: str = "", retry_after: float | None = None
    ) -> float | None:
        """Record a failed request; return how long to wait before the next, or None when the
        web seed is now dropped. *retry_after* is a server's ``Retry-After`` (a 503's), honoured
        when longer than our own back-off."""
        what = f"{problem.value}: {detail}" if detail else problem.value
        self.last_problem = what
        if self.dropped is not None:
            return None
        self.failures += 1
        if problem is Problem.CORRUPT:
            self.corrupt += 1
            if self.corrupt >= self.max_corrupt:
                self.dropped = f"{self.corrupt} corrupt pieces (last: {what})"
                return None
        if self.failures >= self.max_failures:
            self.dropped = f"{self.failures} failures in a row (last: {what})"
            return None
        delay: float = min(self.base_delay * 2.0 ** (self.failures - 1), self.max_delay)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        self.next_try = now + delay
        return delay
