"""Status lines: how a ``swarm`` command tells the program that started it what state it is in.

``swarm compare`` starts its tracker, central server, seed and downloaders with the hidden
option ``--status-fd N`` (N a pipe it passes down) and reads one JSON object per line from it,
so that it never has to match the text printed for people (which is free to change)::

    {"event": "listening", "port": 6969, "urls": ["http://127.0.0.1:6969/announce"]}
    {"event": "listening", "port": 8000, "urls": ["http://127.0.0.1:8000/x.bin"],
     "webseed": "http://127.0.0.1:8000/"}
    {"event": "ready"}
    {"event": "done", "name": "x.bin", "downloaded": 1048576, "seconds": 1.234}
    {"event": "done", "name": "x.bin", "downloaded": 1048576, "seconds": 1.3, "index": 7}
    {"event": "error", "message": "TCP port 6969 is already in use", "exit_code": 1}

``listening``: a tracker, central server or seed accepts connections (``urls``: its announce
URLs, or its files' URLs; a central server adds ``webseed``, the base URL to give a torrent as
its web seed, BEP 19). ``ready``: a downloader has loaded everything and waits for a line
on stdin. ``done``: a download is complete and verified. ``error``: the command is about to
exit with ``exit_code``. Keys left out are unset; a reader ignores keys it does not know.

``web_seed_downloaded`` (on ``done``): of ``downloaded``, the bytes that came from web seeds
(BEP 19); left out by a downloader that does not count them.

``index``: which of several downloaders in one process (``swarm fetch-group``) a line is about;
a process with one downloader leaves it out, so its lines read as they always did.

``progress`` (only when the run is watched: ``swarm compare --web`` sets :data:`PROGRESS_ENV`
in its children's environment; without it nothing is sent): at most one line per
:data:`PROGRESS_PERIOD` per process, for all its downloaders that moved since the last one::

    {"event": "progress", "downloaders": [{"index": 3, "peer_id": "2d5357...",
     "pieces": {"2d5357...": [4, 9], "web": [12]}, "downloaded": 65536, "uploaded": 16384}]}

Per downloader: ``pieces``, the pieces verified since its last report, by where they came
from (the sending peer's ``peer_id`` in hex, ``web`` for a web seed); ``downloaded`` and
``uploaded``, its session's bytes so far (a torrent's, or an HTTP download's bytes done, with
``total``, its size); ``web_seed_downloaded``. A reader that finds a part of a progress line
it cannot read drops that part: progress is for a page to look at, never worth failing a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from swarm.errors import CompareError, UsageError

MAX_LINE = 64 * 1024  # a reader's bound on one line; a writer never comes near it
PROGRESS_ENV = "SWARM_STATUS_PROGRESS"  # set (to a period in seconds): send progress lines
PROGRESS_PERIOD = 0.25  # seconds between two progress lines of a process, at least
WEB_SEED = "web"  # the source of a piece from a web seed (BEP 19)


class Event(enum.StrEnum):
    LISTENING = "listening"
    READY = "ready"
    DONE = "done"
    ERROR = "error"
    PROGRESS = "progress"


@dataclass(frozen=True, slots=True)
class Progress:
    """One downloader's part of a ``progress`` line (see the module's docstring)."""

    index: int | None = None
    peer_id: str | None = None  # hex; a torrent downloader's own (its pieces' senders name it)
    pieces: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (source, pieces) since the last line
    downloaded: int | None = None
    uploaded: int | None = None
    web_seed_downloaded: int | None = None
    total: int | None = None  # an HTTP download's size (0: not known yet)


@dataclass(frozen=True, slots=True)
class Status:
    """One status line."""

    event: Event
    port: int | None = None
    urls: tuple[str, ...] = ()
    name: str | None = None
    downloaded: int | None = None
    seconds: float | None = None
    message: str | None = None
    exit_code: int | None = None
    index: int | None = None  # which downloader of a group (fetch-group); None: the only one
    webseed: str | None = None  # serve-central's base URL for a torrent's url-list (BEP 19)
    web_seed_downloaded: int | None = None  # done: of downloaded, the bytes from web seeds
    progress: tuple[Progress, ...] = field(default=())  # progress: the downloaders that moved


_KEYS = (
    "port",
    "urls",
    "name",
    "downloaded",
    "seconds",
    "message",
    "exit_code",
    "index",
    "webseed",
    "web_seed_downloaded",
)


def encode(status: Status) -> bytes:
    """One JSON object on one line, ``event`` first, unset fields left out."""
    obj: dict[str, object] = {"event": status.event.value}
    for key in _KEYS:
        value = getattr(status, key)
        if value is not None and value != ():
            obj[key] = list(value) if key == "urls" else value
    if status.progress:
        obj["downloaders"] = [_progress_obj(p) for p in status.progress]
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


_INT_FIELDS = ("port", "downloaded", "exit_code", "index", "web_seed_downloaded")
_STR_FIELDS = ("name", "message", "webseed")


def decode(line: bytes) -> Status:
    """Parse one line written by :func:`encode`; :class:`CompareError` if it is not one (only
    ``swarm compare`` reads status lines, and a child that writes a bad one fails the run)."""
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CompareError(f"not a status line: {line[:80]!r}") from None
    if not isinstance(obj, dict):
        raise CompareError(f"not a JSON object: {line[:80]!r}")
    try:
        event = Event(str(obj.get("event")))
    except ValueError:
        raise CompareError(f"unknown event: {obj.get('event')!r}") from None
    if event is Event.PROGRESS:
        progress = _read_progress(obj.get("downloaders"))
        try:
            return replace(_fields(obj, event), progress=progress)
        except CompareError:  # a progress line is never worth failing a run
            return Status(event, progress=progress)
    return _fields(obj, event)


def _fields(obj: dict[str, Any], event: Event) -> Status:
    ints: dict[str, int | None] = {}
    for key in _INT_FIELDS:
        value = obj.get(key)
        if value is not None and (type(value) is not int):
            raise CompareError(f"{key} must be an integer, not {value!r}")
        ints[key] = value
    strs: dict[str, str | None] = {}
    for key in _STR_FIELDS:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise CompareError(f"{key} must be a string, not {value!r}")
        strs[key] = value
    urls = obj.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise CompareError(f"urls must be a list of strings, not {urls!r}")
    seconds = obj.get("seconds")
    if seconds is not None and (type(seconds) not in (int, float)):
        raise CompareError(f"seconds must be a number, not {seconds!r}")
    return Status(
        event,
        port=ints["port"],
        urls=tuple(urls),
        name=strs["name"],
        downloaded=ints["downloaded"],
        seconds=None if seconds is None else float(seconds),
        message=strs["message"],
        exit_code=ints["exit_code"],
        index=ints["index"],
        webseed=strs["webseed"],
        web_seed_downloaded=ints["web_seed_downloaded"],
    )


_PROGRESS_INTS = ("index", "downloaded", "uploaded", "web_seed_downloaded", "total")


def _progress_obj(p: Progress) -> dict[str, object]:
    obj: dict[str, object] = {k: v for k in _PROGRESS_INTS if (v := getattr(p, k)) is not None}
    if p.peer_id is not None:
        obj["peer_id"] = p.peer_id
    if p.pieces:
        obj["pieces"] = {source: list(pieces) for source, pieces in p.pieces}
    return obj


def _read_progress(items: object) -> tuple[Progress, ...]:
    """The downloaders of a progress line; an entry, a field or a piece that is not what it
    should be is left out (never an error: see the module's docstring)."""
    if not isinstance(items, list):
        return ()
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        ints = {k: v if type(v := item.get(k)) is int and v >= 0 else None for k in _PROGRESS_INTS}
        peer_id = item.get("peer_id")
        raw = item.get("pieces")
        pieces: list[tuple[str, tuple[int, ...]]] = []
        if isinstance(raw, dict):
            for source, got in raw.items():
                if isinstance(got, list):
                    good = tuple(i for i in got if type(i) is int and i >= 0)
                    if good:
                        pieces.append((source, good))
        out.append(
            Progress(
                peer_id=peer_id if isinstance(peer_id, str) else None,
                pieces=tuple(pieces),
                **ints,
            )
        )
    return tuple(out)


class StatusWriter:
    """Writes status lines to an inherited file descriptor (a pipe's write end)."""

    def __init__(self, fd: int) -> None:
        try:
            os.fstat(fd)
        except OSError:
            raise UsageError(f"--status-fd {fd}: not an open file descriptor") from None
        os.set_inheritable(fd, False)  # for us alone, not for processes we start
        self.fd: int | None = fd

    def send(self, status: Status) -> None:
        """Write one line; if the reader has gone, stop writing (the command carries on)."""
        if self.fd is None:
            return
        data = memoryview(encode(status))
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            self.fd = None


# -- progress lines: the writer's side ------------------------------------------------------

LINE_BUDGET = 40 * 1024  # bytes a progress line may take, about: a longer one is split
MAX_PIECES = 2048  # pieces in one downloader's part of a line (more: in parts)


def progress_period(environ: dict[str, str] | None = None) -> float | None:
    """The period of progress lines if the run is watched (:data:`PROGRESS_ENV` set to a
    number of seconds, at least 0.05), None otherwise."""
    try:
        period = float((os.environ if environ is None else environ).get(PROGRESS_ENV) or "nan")
    except ValueError:
        return None
    return max(0.05, period) if period == period else None  # NaN: not watched


class _Entry:
    """What the reporter knows of one downloader since its last report."""

    __slots__ = ("counters", "index", "peer_id", "pieces", "read", "sent")

    def __init__(self, index: int | None) -> None:
        self.index = index
        self.peer_id: str | None = None
        self.pieces: dict[str, list[int]] = {}
        self.read: Callable[[], tuple[int | None, ...]] = lambda: ()
        self.counters: tuple[int | None, ...] = ()  # set by an HTTP download's callback
        self.sent: tuple[int | None, ...] = ()

    def note(self, index: int, contributors: set[bytes]) -> None:
        first = min(contributors) if contributors else b""
        source = WEB_SEED if first.startswith(b"web seed ") else first.hex()
        self.pieces.setdefault(source, []).append(index)


class ProgressReporter:
    """The progress lines of one process: every *period*, one line (split when long, see
    :data:`LINE_BUDGET`) for the downloaders that moved since the last, through *send*."""

    def __init__(self, send: Callable[[Status], None], period: float = PROGRESS_PERIOD) -> None:
        self.send = send
        self.period = period
        self._entries: dict[int | None, _Entry] = {}

    def _entry(self, index: int | None) -> _Entry:
        if (entry := self._entries.get(index)) is None:
            entry = self._entries[index] = _Entry(index)
        return entry

    def torrent(self, t: Any, index: int | None = None) -> None:
        """Watch a :class:`~swarm.torrent.TorrentController` (again, after a churned
        downloader's new session: its pieces so far are kept).

        Which peer sent a verified piece is known to its ``PieceIO`` only, which hands the
        senders to its ``on_verified`` listeners."""
        entry = self._entry(index)
        entry.peer_id = bytes(t.host.peer_id).hex()
        entry.read = lambda: (t.downloaded, t.uploaded, t.web_seeds.downloaded)

        def note(piece: int, contributors: set[bytes]) -> None:
            entry.note(piece, contributors)
            if t.picker.num_have + 1 >= t.num_pieces:  # the last: before the done line
                asyncio.get_running_loop().call_soon(self.report)

        t.io.on_verified.append(note)

    def http(self, index: int | None = None) -> Callable[[int, int], None]:
        """The ``on_progress(done, total)`` of an HTTP download."""
        entry = self._entry(index)

        def on_progress(done: int, total: int) -> None:
            entry.counters = (done, None, None, total)

        return on_progress

    def lines(self) -> list[Status]:
        """The progress lines due now (none if nothing moved); what they say is taken."""
        out: list[list[Progress]] = [[]]
        cost = 0
        for entry in self._entries.values():
            counters = entry.counters or entry.read()
            if not entry.pieces and counters == entry.sent:
                continue
            entry.sent = counters
            down, up, web, total = (*counters, None, None, None, None)[:4]
            pieces = [(s, tuple(got)) for s, got in entry.pieces.items()]
            entry.pieces = {}
            while True:  # a downloader's pieces in parts of at most MAX_PIECES
                part, left, n = [], [], 0
                for source, got in pieces:
                    room = max(0, MAX_PIECES - n)
                    if got[:room]:
                        part.append((source, got[:room]))
                    if got[room:]:
                        left.append((source, got[room:]))
                    n += len(got[:room])
                size = 160 + 48 * len(part) + 8 * n  # bytes of JSON, at most
                if cost + size > LINE_BUDGET and out[-1]:
                    out.append([])
                    cost = 0
                out[-1].append(
                    Progress(entry.index, entry.peer_id, tuple(part), down, up, web, total)
                )
                cost += size
                if not left:
                    break
                pieces = left
        return [Status(Event.PROGRESS, progress=tuple(p)) for p in out if p]

    def report(self) -> None:
        """Send the lines due now."""
        for line in self.lines():
            self.send(line)

    async def run(self) -> None:
        """Report every :attr:`period` until cancelled."""
        while True:
            await asyncio.sleep(self.period)
            self.report()


@contextlib.asynccontextmanager
async def watch_progress(
    send: Callable[[Status], None], torrent: Any = None, index: int | None = None
) -> AsyncIterator[ProgressReporter | None]:
    """Within the block, progress lines through *send* if the run is watched
    (:func:`progress_period`; the reporter, else None and nothing at all is done); *torrent*:
    a :class:`~swarm.torrent.TorrentController` to watch at once (as downloader *index*)."""
    period = progress_period()
    if period is None:
        yield None
        return
    reporter = ProgressReporter(send, period)
    if torrent is not None:
        reporter.torrent(torrent, index)
    task = asyncio.ensure_future(reporter.run())
    try:
        yield reporter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        reporter.report()


__all__ = ["Event", "Progress", "ProgressReporter", "Status", "StatusWriter", "decode", "encode"]
__all__ += ["progress_period", "watch_progress"]
