"""The central server's HTTP decisions as data (RFC 9110): which status, which headers and which
bytes of a file answer a GET or HEAD, and which request paths name a served file.

One byte range per request (§14: 206 with Content-Range, 416 with ``bytes */LEN``; a
malformed or multi-range ``Range`` is ignored and answered with the whole file, as the RFC
allows); ETag, Last-Modified, If-None-Match and If-Range. The raw request path is split on
``/`` before it is percent-decoded, and a segment that is empty, ``.``, ``..``, hidden, or
decodes to something holding ``/``, ``\\`` or NUL names nothing. No sockets here: the server
in :mod:`swarm.central.server` asks, then sends.

The client's side is here too: :func:`read_answer` says what a response to ``GET`` (with
``Range: bytes=HAVE-`` when resuming) means for the ``.part`` file, from its status and headers
alone, before a byte of the body is read: write the body at an offset, the file is already
whole, or ask again for the whole file because the range answered is not one to splice in.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from typing import Literal

from aiohttp import hdrs

from swarm.errors import CentralError, NotFoundError

__all__ = [
    "Answer",
    "Plan",
    "make_etag",
    "parse_range",
    "plan_response",
    "quote_path",
    "read_answer",
    "split_request_path",
]

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)


def parse_range(value: str | None, size: int) -> tuple[int, int] | Literal[False] | None:
    """The inclusive byte span ``(first, last)`` a ``Range`` header asks for in a
    representation of *size* bytes; ``None`` when the header is absent, malformed or names
    several ranges (to be ignored: the whole file is sent); ``False`` when it is a valid
    single range that no byte satisfies (416)."""
    if value is None:
        return None
    match = _RANGE_RE.match(value)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if first_text:
        first = int(first_text)
        if last_text:
            last = int(last_text)
            if last < first:
                return None  # syntactically invalid (RFC 9110 §14.1.1): ignore
            last = min(last, size - 1)
        else:
            last = size - 1
        if first >= size:
            return False
        return first, last
    if not last_text:
        return None  # "bytes=-"
    suffix = int(last_text)
    if suffix == 0 or size == 0:
        return False
    return max(0, size - suffix), size - 1


def make_etag(size: int, mtime_ns: int) -> str:
    """A strong entity tag from the file's size and modification time (aiohttp's form)."""
    return f'"{mtime_ns:x}-{size:x}"'


def _etag_in(etag: str, header: str) -> bool:
    """Whether the If-None-Match list *header* names *etag* (weak comparison) or is ``*``."""
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == opaque for t in header.split(","))


@dataclass(slots=True, frozen=True)
class Plan:
    """What to answer: the status, the headers, and the span of the file to send."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    first: int = 0
    length: int = 0  # bytes of the file to send (0 for HEAD, 304, 416)


def plan_response(
    method: str, request_headers: Mapping[str, str], size: int, mtime_ns: int, content_type: str
) -> Plan:
    """Decide the response to a GET or HEAD of a file of *size* bytes last modified at
    *mtime_ns* (ns since the epoch), given the request's headers."""
    etag = make_etag(size, mtime_ns)
    headers: dict[str, str] = {
        hdrs.ETAG: etag,
        hdrs.LAST_MODIFIED: formatdate(mtime_ns / 1e9, usegmt=True),
        hdrs.ACCEPT_RANGES: "bytes",
    }
    if_none_match = request_headers.get(hdrs.IF_NONE_MATCH)
    if if_none_match is not None and _etag_in(etag, if_none_match):
        return Plan(304, headers)
    span = parse_range(request_headers.get(hdrs.RANGE), size)
    if span is not None and not _if_range_holds(request_headers.get(hdrs.IF_RANGE), etag, mtime_ns):
        span = None  # the client's copy is stale: send the whole current file
    headers[hdrs.CONTENT_TYPE] = content_type
    if span is False:
        headers[hdrs.CONTENT_RANGE] = f"bytes */{size}"
        return Plan(416, headers)
    status, first, last = (200, 0, size - 1) if span is None else (206, *span)
    if status == 206:
        headers[hdrs.CONTENT_RANGE] = f"bytes {first}-{last}/{size}"
    length = last - first + 1
    headers[hdrs.CONTENT_LENGTH] = str(length)
    return Plan(status, headers, first, 0 if method == "HEAD" else length)


def _if_range_holds(if_range: str | None, etag: str, mtime_ns: int) -> bool:
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return if_range == etag  # strong comparison: a weak tag never matches
    try:
        date = parsedate_to_datetime(if_range)
    except (TypeError, ValueError):
        return False
    return int(date.timestamp()) == mtime_ns // 1_000_000_000


def split_request_path(raw_path: str) -> tuple[str, ...] | None:
    """The decoded segments of a raw request target (``/a/b%20c?q``), or None if any segment
    could lead anywhere but to a plain name inside the served folder."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None  # absolute-form or asterisk-form targets: not ours
    if path == "/":
        return ()
    parts: list[str] = []
    for segment in path[1:].split("/"):
        try:
            name = urllib.parse.unquote(segment, errors="strict")
        except UnicodeDecodeError:
            return None
        if not name or name.startswith(".") or any(c in name for c in "/\\\x00"):
            return None  # also covers "." and "..", hidden files, and encoded separators
        parts.append(name)
    return tuple(parts)


def quote_path(parts: tuple[str, ...]) -> str:
    """The percent-encoded URL path of segments *parts* (the reverse of
    :func:`split_request_path`, without the leading ``/``)."""
    return "/".join(urllib.parse.quote(p, safe="") for p in parts)


# -- the client's side ----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Answer:
    """What a response means for a download that has *have* bytes: ``write`` the body at
    *first* (a body of *length* bytes, None until it ends) into a file of *total* bytes (None
    while unknown); the file is already ``whole`` (*total* bytes); or ``restart``: ask again
    for the whole file, without a range (*why* says what was wrong with this one)."""

    action: Literal["write", "whole", "restart"]
    first: int = 0
    total: int | None = None
    length: int | None = None
    why: str = ""


def content_range(value: str | None) -> tuple[int | None, int | None, int | None] | None:
    """``bytes FIRST-LAST/TOTAL`` (RFC 9110 §14.4) as (first, last, total), None for each part
    given as ``*``; None if the header is absent or malformed (last before first included)."""
    match = _CONTENT_RANGE_RE.match(value or "")
    if match is None:
        return None
    first, last, total = (None if g in (None, "*") else int(g) for g in match.groups())
    if first is not None and last is not None and last < first:
        return None
    return first, last, total


def read_answer(
    url: str, status: int, reason: str, headers: Mapping[str, str], have: int
) -> Answer:
    """Read the status and headers of the answer to ``GET url`` that asked for
    ``bytes=HAVE-`` (no Range at all when *have* is 0). Raises :class:`NotFoundError` (404,
    410) or :class:`CentralError` for an answer that cannot be used at all."""
    if status in (404, 410):
        raise NotFoundError(f"{url}: not found on the server (HTTP {status})")
    encoding = headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
    if status in (200, 206) and encoding not in ("", "identity"):
        raise CentralError(
            f"{url}: the server sent the file encoded (Content-Encoding: {encoding}),"
            " though asked for it as it is"
        )
    length = _content_length(headers.get(hdrs.CONTENT_LENGTH))
    if status == 200:
        return Answer("write", 0, length, length)
    span = content_range(headers.get(hdrs.CONTENT_RANGE))
    if status == 416 and have:
        if span is not None and span[2] == have:
            return Answer("whole", have, have)
        return Answer("restart", why="the file is not as long as the .part: it changed")
    if status == 206 and have:
        first, last, total = span if span is not None else (None, None, None)
        if first is None or last is None or total is None:
            why = f"a 206 without a usable Content-Range ({headers.get(hdrs.CONTENT_RANGE)!r})"
        elif not first <= have <= last:
            why = f"bytes {first}-{last} where bytes {have}- were asked for"
        elif last >= total:
            why = f"a Content-Range past the end of the file ({headers[hdrs.CONTENT_RANGE]})"
        elif length is not None and length != last - first + 1:
            why = f"{length} bytes for the {last - first + 1} of its Content-Range"
        else:
            # Bytes before *have* are the same file's (If-Range held): rewriting them is harmless.
            return Answer("write", first, total, last - first + 1)
        return Answer("restart", why=why)
    detail = f"HTTP {status} {reason}".rstrip()
    if status == 206:
        detail += " to a request for the whole file"
    raise CentralError(f"{url}: the server answered {detail}")


def _content_length(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value)
