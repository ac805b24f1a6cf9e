"""Where a web seed's answer goes, read by read: straight into the piece buffers.

:class:`JobSink` is the :class:`~swarm.webseed_conn.Sink` of one run (a
:class:`~swarm.webseed_run.Job`): the connection asks it for room before each read, and it
gives a view of the piece's own buffer (:meth:`PieceIO.piece_buffer`) over the blocks of that
piece the web seed was asked for and still owes, so the kernel copies the bytes where they
belong; each whole block is then handed on without a copy (:func:`hand_on_in_place`). Safe
because nothing runs between the room given and the bytes landing, and a block it still owes
is one nobody else has delivered (a piece is hashed, and its buffer reused, only once all of
its blocks are in). Anything else goes through a scratch buffer and the old path: bytes
before the range (a whole-file answer), a block another source delivered meanwhile (the rest
of it is dropped), blocks it was not asked for (handed on as a peer's, counted as waste).
"""

from __future__ import annotations

from typing import Any, Protocol

from swarm.picker import PiecePicker
from swarm.piece_io import PieceIO
from swarm.webseed_plan import WebSeedHealth
from swarm.webseed_run import BlockCutter, Job

__all__ = ["JobSink", "hand_on"]


class WebSeedTorrent(Protocol):
    """The torrent, as a web seed's bytes reach it (:class:`swarm.webseed.WebSeedTorrent`)."""

    picker: PiecePicker
    io: PieceIO
    downloaded: int
    wasted: int

    def on_piece(self, conn: Any, index: int, begin: int, block: bytes | memoryview) -> None: ...


class WebSeedSource(Protocol):
    """The web seed the bytes come from."""

    peer_id: bytes
    downloaded: int
    health: WebSeedHealth

    def __hash__(self) -> int: ...


SCRATCH_BYTES = 256 << 10


class JobSink:
    """One job's bytes, in order, from *job.start*: into the pieces."""

    def __init__(self, torrent: WebSeedTorrent, source: WebSeedSource, job: Job) -> None:
        self.torrent = torrent
        self.source = source
        self.job = job
        self.picker = torrent.picker
        self.cutter = BlockCutter(self.picker, job.start)
        self.pos = self.landed = job.start  # the next byte; the first not handed on
        self.skip = 0  # bytes to drop before the job's (a whole-file answer's head)
        self._spare: memoryview | None = None  # made when first needed (most jobs never do)
        self._mode = "copy"
        self._index = -1
        self._piece: bytearray | None = None
        self._drop_end = 0

    @property
    def done(self) -> bool:
        """Every block asked of the web seed came (some from others), or it was dropped (a
        corrupt piece: the rest of its answer is not wanted)."""
        return not self.job.blocks or self.source.health.dropped is not None

    def buffer(self, limit: int) -> memoryview:
        if self.skip:
            self._mode = "skip"
            return self._scratch()[: min(self.skip, limit, SCRATCH_BYTES)]
        picker = self.picker
        index, begin = divmod(self.pos, picker.piece_length)
        bs = picker.block_size
        first = begin - begin % bs
        if not self.cutter.pending and (index, first) in self.job.blocks:
            size = picker.piece_size(index)
            end = first + bs
            while end < size and end - begin < limit and (index, end) in self.job.blocks:
                end += bs
            end = min(end, size, begin + limit)
            if index != self._index:
                self._index = index
                self._piece = self.torrent.io.piece_buffer(index, self.source.peer_id)
            self._mode = "direct"
            return memoryview(self._piece)[begin:end]  # type: ignore[arg-type]
        if begin != first and not self.cutter.pending:
            # The rest of a block begun in place that someone else has delivered since.
            self._mode = "drop"
            end = min(first + bs, picker.piece_size(index))
            self._drop_end = index * picker.piece_length + end
            return self._scratch()[: min(end - begin, limit)]
        self._mode = "copy"
        return self._scratch()[: min(limit, SCRATCH_BYTES)]

    def _scratch(self) -> memoryview:
        """Room for bytes that do not go straight into a piece."""
        if self._spare is None:
            self._spare = memoryview(bytearray(SCRATCH_BYTES))
        return self._spare

    def written(self, n: int) -> None:
        mode = self._mode
        if mode == "skip":
            self.skip -= n
            return
        self.source.downloaded += n
        self.pos += n
        if mode == "copy":
            torrent, source, asked = self.torrent, self.source, self.job.blocks
            for index, begin, span in self.cutter.feed(self._scratch()[:n]):
                hand_on(torrent, source, index, begin, span, asked)
            self.landed = self.cutter.offset
        elif mode == "drop":
            if self.pos >= self._drop_end:
                self.landed = self.cutter.offset = self.pos
        else:
            self._hand_on_in_place()

    def _hand_on_in_place(self) -> None:
        """The whole blocks that have landed in the piece since the last read."""
        picker = self.picker
        bs = picker.block_size
        index = self._index
        start = index * picker.piece_length
        size = picker.piece_size(index)
        upto = self.pos - start
        upto = size if upto >= size else upto - upto % bs
        b = self.landed - start
        if b >= upto:
            return
        torrent, source, asked = self.torrent, self.source, self.job.blocks
        piece = self._piece
        assert piece is not None
        endgame = picker.in_endgame  # (what the blocks below change cannot start it)
        received = picker.block_received
        got = 0
        while b < upto:
            length = min(bs, size - b)
            asked.discard((index, b))
            if b + length >= size or endgame:
                # The piece's last block as a peer's goes (on_piece verifies a full piece);
                # in end-game every block, so that the others asked for it hear of it.
                torrent.on_piece(source, index, b, bytes(piece[b : b + length]))
            else:
                ok, others = received(source, index, b)
                got += length
                if not ok:
                    torrent.wasted += length
                for other in others:  # not outside end-game, but a peer must hear of it
                    _cancel(other, index, b, length)
            b += length
        torrent.downloaded += got
        self.landed = self.cutter.offset = start + upto


def hand_on(
    torrent: WebSeedTorrent,
    source: WebSeedSource,
    index: int,
    begin: int,
    span: bytes | memoryview,
    asked: set[tuple[int, int]],
) -> None:
    """Whole blocks of one piece from *source*, *begin* onwards, to *torrent*: every block
    but the last straight into the piece (one copy, one picker call per block, no request
    timing: a web seed has no request queue to size), the last as a peer's block goes
    (``on_piece``: the piece verified once full). In end-game, every block as a peer's (the
    others it was asked of get a cancel)."""
    picker = torrent.picker
    bs = picker.block_size
    last = begin + (len(span) - 1) // bs * bs
    if last > begin and not picker.in_endgame:
        new = 0
        for b in range(begin, last, bs):
            asked.discard((index, b))
            ok, others = picker.block_received(source, index, b)
            if not ok:
                break
            new += 1
            for other in others:  # not outside end-game, but a peer must hear of it
                _cancel(other, index, b, picker.block_length(index, b // bs))
        head = new * bs
        if head:
            torrent.downloaded += head
            torrent.io.add_block(index, begin, span[:head], source.peer_id)
        begin, span = begin + head, span[head:]
    for b in range(begin, begin + len(span), bs):
        asked.discard((index, b))
        torrent.on_piece(source, index, b, span[b - begin : b - begin + bs])


def _cancel(peer: Any, index: int, begin: int, length: int) -> None:
    peer.cancel(index, begin, length)
