"""Web seeds (BEP 19), the pure part of a download: which run of pieces to ask a web seed for,
what an answer must look like, and how its bytes become blocks.

:func:`pick_run` asks the torrent's :class:`~swarm.picker.PiecePicker`, through its public
API alone, for work as a peer that has every piece would get it (the web seed is not counted
in the picker's availability, so rarest first hands it the pieces no connected peer has
first), then grows that piece into a run of consecutive whole pieces of about
``run_bytes``, so that a web seed gets few, large range requests. :func:`check_response`
decides whether an HTTP answer carries exactly the bytes asked for. :class:`BlockCutter` cuts
a run's byte stream into the 16 KiB blocks the rest of the engine handles. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field

from swarm.picker import Block, PiecePicker
from swarm.webseed_plan import FileRange, Problem

__all__ = [
    "FIRST_RUN_BYTES",
    "RUN_SECONDS",
    "WHOLE_BODY_LIMIT",
    "BadResponse",
    "BlockCutter",
    "Job",
    "RunSizer",
    "check_response",
    "pick_run",
]

WHOLE_BODY_LIMIT = 4 << 20  # a 200 (no range support) is read only for a file this small
RUN_SECONDS = 1.0  # a run is about this long at the connection's measured rate ...
CROWD_SHARE = 2  # see pick_run's crowd
FIRST_RUN_BYTES = 1  # ... and this long before there is a measure
RUN_GROWTH = 2  # ... and at most this many times the last run (see RunSizer)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", re.ASCII | re.IGNORECASE)


# -- which pieces ----------------------------------------------------------------------------


def _nblocks(picker: PiecePicker, index: int) -> int:
    return -(-picker.piece_size(index) // picker.block_size)


def _whole_pieces(picker: PiecePicker, peer: Hashable, blocks: list[Block]) -> list[int]:
    """The pieces all of whose blocks are in *blocks*; the other blocks go back to the picker."""
    count: dict[int, int] = {}
    for index, _, _ in blocks:
        count[index] = count.get(index, 0) + 1
    whole = [i for i, n in count.items() if n == _nblocks(picker, i)]
    rest = [b for b in blocks if b[0] not in whole]
    if rest:
        picker.release(peer, rest)
    return sorted(whole)


def _free(picker: PiecePicker, index: int, rare_only: bool) -> bool:
    """Whether *index* may join a run: wanted, not started, and (*rare_only*) no peer has it."""
    if not picker.wanted(index) or index in picker.partial:
        return False
    return not rare_only or (picker.availability[index] <= 0 and picker.seeds == 0)


def pick_run(
    picker: PiecePicker,
    peer: Hashable,
    run_bytes: int,
    *,
    rare_only: bool = False,
    crowd: int = 0,
    draw: float = 0.0,
    in_order: int | None = None,
) -> list[Block]:
    """Blocks for *peer* (a web seed) to fetch in one go, marked requested in *picker*: a run
    of consecutive whole pieces, at least one and about *run_bytes*, starting from the piece
    rarest first gives a peer that has everything (pieces other peers have started are left
    to them); when no piece is free, blocks of one started piece (those nobody was asked for,
    or in end-game those others are fetching, as a peer would duplicate them). *rare_only*:
    new pieces only among those no connected peer has (end-game as usual); then with *crowd*
    other downloaders of the web seed connected (each may be fetching such a piece from it
    that we cannot know of), a new piece is taken only if *draw* (uniform in [0, 1)) times
    *crowd* + 1 is below the count of such pieces: when fewer are left than downloaders, about
    one downloader per piece asks, rather than all of them for the same few. *in_order*: the
    run starts at the first free piece from that piece on (wrapping round): alone with a web
    seed, the file is written in order from one place, rather than in runs at random places
    (and downloaders that start at different places do not all ask for the same first piece).
    Empty: nothing.
    """
    n = picker.num_pieces
    if picker.complete or n == 0:
        return []
    full = _nblocks(picker, 0)
    if rare_only:
        mask = [_free(picker, i, True) for i in range(n)]
        if crowd > 0 and draw * CROWD_SHARE * (crowd + 1) >= sum(mask):
            mask = [False] * n  # let the others take the few left; end-game as usual
    elif in_order is not None:
        order = [*range(in_order % n, n), *range(in_order % n)]
        first = next((i for i in order if _free(picker, i, False)), None)
        mask = [i == first for i in range(n)]
    else:
        mask = [True] * n
        for i in picker.partial:
            mask[i] = False
    pieces = _whole_pieces(picker, peer, picker.pick(peer, mask, full, endgame=False))
    if not pieces:
        # Nothing new to start: help finish a started piece, one piece per request.
        started = [False] * n
        for i in picker.partial:
            started[i] = True
        blocks = picker.pick(peer, started, full, endgame=True)
        if not blocks:
            return []
        first = blocks[0][0]
        rest = [b for b in blocks if b[0] != first]
        if rest:
            picker.release(peer, rest)
        return [b for b in blocks if b[0] == first]
    lo = hi = pieces[0]
    size = picker.piece_size(lo)
    # The run grows over free pieces next to the first, up then down, all taken in one call.
    more: list[int] = []
    for step in (1, -1):
        i = hi + 1 if step > 0 else lo - 1
        while size < run_bytes and 0 <= i < n and _free(picker, i, rare_only):
            more.append(i)
            size += picker.piece_size(i)
            i += step
    if more:
        mask = [False] * n
        for i in more:
            mask[i] = True
        got = set(_whole_pieces(picker, peer, picker.pick(peer, mask, len(more) * full, False)))
        while hi + 1 in got:
            hi += 1
        while lo - 1 in got:
            lo -= 1
        stray = [i for i in got if not lo <= i <= hi]  # not next to the run (not expected)
        if stray:
            picker.release(peer, [b for i in stray for b in _blocks(picker, i)])
    return [b for i in range(lo, hi + 1) for b in _blocks(picker, i)]


def _blocks(picker: PiecePicker, index: int) -> list[Block]:
    bs = picker.block_size
    size = picker.piece_size(index)
    out = [(index, b, bs) for b in range(0, size - bs, bs)]
    last = len(out) * bs
    out.append((index, last, size - last))
    return out


class RunSizer:
    """How many bytes to ask a web seed's connection for at once: about :data:`RUN_SECONDS`
    of its measured rate, at most *max_bytes* (fewer, larger requests where the web seed is
    fast; where it is slow, a run it holds for long is one the peers wait for or duplicate in
    end-game: a 1 MiB run from a web seed capped at 1 MiB/s and shared by four downloaders
    took each of them the whole download's time). A run grows at most :data:`RUN_GROWTH`
    times over the last: a short run measures the server's idle credit, not its rate (a
    capped server sent the first 16 KiB piece in a millisecond, and the next run, asked before
    any peer was known, was the rest of the file: compare's hybrid mode held 2.3-2.5 MB on one
    connection for its whole 5.5 s, 1.30-1.45x of the bound, where 1.10-1.15x is usual)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.rate = 0.0  # bytes/s of one connection, a moving average over runs
        self.last = 0  # bytes of the last run

    def done(self, nbytes: int, seconds: float) -> None:
        """A run of *nbytes* took *seconds*."""
        if nbytes > 0 and seconds > 0:
            sample = nbytes / seconds
            self.rate = sample if self.rate == 0 else 0.5 * (self.rate + sample)
            self.last = nbytes

    @property
    def run_bytes(self) -> int:
        if self.rate == 0:
            want = float(FIRST_RUN_BYTES)
        else:
            want = min(self.rate * RUN_SECONDS, RUN_GROWTH * self.last)
        return int(max(1, min(want, self.max_bytes)))


# -- one job: a byte span of the torrent, cut into blocks --------------------------------------


@dataclass(slots=True)
class Job:
    """A span of the torrent's bytes, ``start`` to ``end`` (exclusive), covering *blocks*
    (those asked of the web seed; others inside the span are delivered too, as data)."""

    start: int
    end: int
    blocks: set[tuple[int, int]] = field(default_factory=set)  # (index, begin) not yet in

    @classmethod
    def of(cls, blocks: list[Block], piece_length: int) -> Job:
        starts = [i * piece_length + b for i, b, _ in blocks]
        ends = [s + length for s, (_, _, length) in zip(starts, blocks, strict=True)]
        return cls(min(starts), max(ends), {(i, b) for i, b, _ in blocks})

    def remaining(self, picker: PiecePicker) -> list[Block]:
        """The blocks asked of the web seed that have not come."""
        return [(i, b, min(picker.block_size, picker.piece_size(i) - b)) for i, b in self.blocks]


class BlockCutter:
    """Cuts the bytes of a :class:`Job`'s span, fed in order, into spans of whole blocks
    ``(index, begin, data)`` inside one piece each (a block ends at the block size or at its
    piece's end): as many whole blocks of a piece as a read brought, handed on at once."""

    def __init__(self, picker: PiecePicker, start: int) -> None:
        self.piece_length = picker.piece_length
        self.piece_size = picker.piece_size
        self.block_size = picker.block_size
        self.offset = start  # where the next block starts, in the torrent
        self._buf = bytearray()

    def _next_length(self) -> int:
        index, begin = divmod(self.offset, self.piece_length)
        return min(self.block_size, self.piece_size(index) - begin)

    def feed(self, data: bytes | memoryview) -> Iterator[tuple[int, int, bytes | memoryview]]:
        """The spans *data* completes (take each before the next: a span may be a view of
        *data*, which the caller copies into its piece, rather than a copy of its own)."""
        view = memoryview(data)
        buf = self._buf
        if buf:  # a block begun in an earlier read: finish it first
            need = self._next_length() - len(buf)
            if len(view) < need:
                buf += view
                return
            buf += view[:need]
            view = view[need:]
            index, begin = divmod(self.offset, self.piece_length)
            self.offset += len(buf)
            yield index, begin, bytes(buf)
            buf.clear()
        bs = self.block_size
        while view:
            index, begin = divmod(self.offset, self.piece_length)
            left = self.piece_size(index) - begin
            if left <= 0:  # the torrent's end
                return
            n = left if len(view) >= left else len(view) // bs * bs
            if n <= 0:
                break
            self.offset += n
            yield index, begin, view[:n]
            view = view[n:]
        buf += view

    @property
    def pending(self) -> int:
        """Bytes held that do not make a whole block yet."""
        return len(self._buf)


# -- what an answer must be -----------------------------------------------------------------


class BadResponse(Exception):
    """A web seed's answer we cannot use: what went wrong, for the log and its health."""

    def __init__(self, problem: Problem, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail
        self.retry_after = retry_after


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None  # an HTTP date: our own back-off


def check_response(
    status: int, headers: Mapping[str, str], asked: FileRange, file_length: int
) -> int:
    """How many bytes of the body come before the range *asked* (of a file of *file_length*
    bytes): 0 for a 206 whose ``Content-Range`` is exactly the range asked; the range's start
    for a 200 that carries the whole file (only if its ``Content-Length`` is the file's length,
    and the file is small or the range is all of it). Anything else is :class:`BadResponse`."""
    encoding = headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise BadResponse(Problem.HTTP_ERROR, f"HTTP {status} with Content-Encoding {encoding}")
    length = headers.get("Content-Length")
    if status == 206:
        value = headers.get("Content-Range", "")
        m = _CONTENT_RANGE.fullmatch(value)
        if (
            m is None
            or (int(m[1]), int(m[2])) != (asked.start, asked.end)
            or (m[3] != "*" and int(m[3]) != file_length)
        ):
            raise BadResponse(
                Problem.HTTP_ERROR,
                f"HTTP 206 with Content-Range {value!r} for {asked.header} of {file_length}",
            )
        if length is not None and length.strip() != str(asked.length):
            raise BadResponse(
                Problem.HTTP_ERROR, f"HTTP 206 of {length} bytes for {asked.length} asked"
            )
        return 0
    if status == 200:
        whole = asked.start == 0 and asked.end == file_length - 1
        if length is None or length.strip() != str(file_length):
            raise BadResponse(
                Problem.HTTP_ERROR,
                f"HTTP 200 of {length or 'unknown'} bytes for a file of {file_length}",
            )
        if not whole and file_length > WHOLE_BODY_LIMIT:
            raise BadResponse(Problem.HTTP_ERROR, f"HTTP 200 (no range support) for {asked.header}")
        return asked.start
    retry = _retry_after(headers) if status in (429, 503) else None
    raise BadResponse(Problem.HTTP_ERROR, f"HTTP {status}", retry)
