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
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass

from swarm.errors import CompareError, UsageError

MAX_LINE = 64 * 1024  # a reader's bound on one line; a writer never comes near it


class Event(enum.StrEnum):
    LISTENING = "listening"
    READY = "ready"
    DONE = "done"
    ERROR = "error"


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


__all__ = ["Event", "Status", "StatusWriter", "decode", "encode"]
