"""One HTTP/1.1 GET (RFC 9110, 9112) over asyncio, for the tracker client's announces.

Why not aiohttp: an announce is one small GET every few minutes, and importing aiohttp costs
a third of a second at the start of every ``swarm fetch`` and ``swarm seed``. This client
does what an announce needs and no more: one connection per request (``Connection:
close``), plain or TLS (the system's trust store), redirects, a bounded body and one time
limit over the whole exchange. The response is parsed by httptools (llhttp), as the
tracker's own HTTP shell is; nothing here reads HTTP by hand.

Every failure is an :class:`HTTPGetError` whose message says what went wrong for a user.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

import httptools

from swarm import __version__
from swarm.errors import SwarmError

__all__ = ["HTTPGetError", "Response", "Target", "get", "redirect", "target", "describe"]

MAX_BODY = 1 << 20
"""Most bytes of body an answer may have."""
MAX_HEAD = 64 * 1024
"""Most bytes an answer's status line and headers may take."""
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = f"swarm/{__version__}"
CLOSE_TIMEOUT = 1.0
"""Longest the closing of a connection (TLS close_notify) may take once the answer is in."""

# Characters left as they are in a request target: RFC 3986's reserved and unreserved ones,
# and '%' so that a query already percent-encoded (an announce's info_hash) is sent unchanged.
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"


class HTTPGetError(SwarmError):
    """A GET that brought no answer: refused, reset, timed out, not HTTP, too long..."""


@dataclass(frozen=True, slots=True)
class Response:
    """The final answer (after any redirects): its status, reason phrase and body."""

    status: int
    reason: str
    body: bytes
    url: str


_default_context: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """The system's trust store, loaded on the first https request only (it takes a while)."""
    global _default_context
    if _default_context is None:
        _default_context = ssl.create_default_context()
    return _default_context


@dataclass(frozen=True, slots=True)
class _Target:
    https: bool
    host: str
    port: int
    request: bytes


CLOSE = "Connection: close\r\n"


def _target(url: str, extra: str = "", keep_alive: bool = False) -> _Target:
    """Where *url* points and the request to send there (*extra*: more header lines, each
    ending in CRLF; *keep_alive*: no ``Connection: close``)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise HTTPGetError(f"bad URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise HTTPGetError("not an http(s) URL")
    try:  # also what the resolver would refuse: empty labels, labels over 63 characters
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except UnicodeError:
        raise HTTPGetError("bad host name") from None
    if not host or any(c <= " " or c in "\x7f/\\" for c in host):
        raise HTTPGetError("bad host name")
    https = scheme == "https"
    default = 443 if https else 80
    port = default if port is None else port
    authority = f"[{host}]" if ":" in host else host
    if port != default:
        authority += f":{port}"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    head = (
        f"GET {urllib.parse.quote(target, safe=_TARGET_SAFE)} HTTP/1.1\r\n"
        f"Host: {authority}\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
        "Accept-Encoding: identity\r\n"
        f"{extra}{'' if keep_alive else CLOSE}\r\n"
    )
    return _Target(https, host, port, head.encode("ascii"))


class _Answer:
    """httptools' callbacks: collects one response (skipping any 1xx before it)."""

    def __init__(self, max_body: int) -> None:
        self.parser = httptools.HttpResponseParser(self)
        # As lenient as aiohttp is with servers (bare LF line ends, odd bytes in header values,
        # spaces after a chunk size): trackers run on all sorts of servers, and a connection
        # that carries one answer and closes leaves no room for request smuggling.
        self.parser.set_dangerous_leniencies(
            lenient_headers=True,
            lenient_optional_cr_before_lf=True,
            lenient_spaces_after_chunk_size=True,
        )
        self.max_body = max_body
        self._reset()

    def _reset(self) -> None:
        self.reason = b""
        self.location: bytes | None = None
        self.framed = False  # a Content-Length or chunked body (else it ends at EOF)
        self.headers_done = False
        self.body: list[bytes] = []
        self.size = 0
        self.too_long = False
        self.complete = False

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"location":
            self.location = value
        elif name in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        # Not raised here: httptools would wrap it. feed() looks at the flag.
        self.size += len(body)
        if self.size > self.max_body:
            self.too_long = True
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue and the like: the answer comes after
            self._reset()
        else:
            self.complete = True

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise HTTPGetError("the server switched protocols") from None
        except httptools.HttpParserError as exc:
            raise HTTPGetError(f"the answer is not HTTP ({exc})") from None
        if self.too_long:
            raise HTTPGetError(f"the answer is longer than {_size(self.max_body)}")

    def eof(self) -> None:
        """The server closed the connection: fine only for a body that ends there."""
        if not self.headers_done:
            raise HTTPGetError("the server closed the connection without an answer")
        if self.framed:
            raise HTTPGetError("the server closed the connection in the middle of the answer")
        self.complete = True


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and not n & ((1 << 20) - 1) else f"{n} bytes"


def _describe(exc: OSError | ValueError, target: _Target) -> str:
    where = f"{target.host}:{target.port}"
    if isinstance(exc, UnicodeError):  # from the resolver: an empty or too long label
        return f"bad host name {target.host}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS with {where} failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {where} failed: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {target.host} ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where} refused the connection"
    if isinstance(exc, ConnectionResetError):
        return f"{where} reset the connection"
    detail = exc.strerror if isinstance(exc, OSError) else None
    return f"cannot talk to {where} ({detail or exc or type(exc).__name__})"


async def _once(target: _Target, answer: _Answer, ssl_context: ssl.SSLContext | None) -> None:
    """Send the request and read the answer into *answer*."""
    context = (ssl_context or default_ssl_context()) if target.https else None
    limit = answer.max_body + MAX_HEAD
    try:
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=context, server_hostname=target.host if context else None
        )
    except (OSError, ValueError) as exc:
        raise HTTPGetError(_describe(exc, target)) from None
    try:
        writer.write(target.request)
        received = 0
        while not answer.complete:
            data = await reader.read(65536)
            if not data:
                answer.eof()
                break
            received += len(data)
            answer.feed(data)
            if received > limit and not answer.complete:
                raise HTTPGetError(f"the answer is longer than {_size(answer.max_body)}")
    except OSError as exc:
        raise HTTPGetError(_describe(exc, target)) from None
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await writer.wait_closed()


def _redirect(url: str, location: bytes) -> tuple[str, _Target]:
    """Where a Location header (absolute or relative to *url*) sends us, and the request."""
    try:
        text = location.decode("utf-8").strip()
    except UnicodeDecodeError:
        text = location.decode("latin-1").strip()
    try:
        new = urllib.parse.urljoin(url, text)
    except ValueError as exc:
        raise HTTPGetError(f"redirected to {text!r}: bad URL ({exc})") from None
    try:
        return new, _target(new)
    except HTTPGetError as exc:
        raise HTTPGetError(f"redirected to {text!r}: {exc}") from None


async def get(
    url: str,
    *,
    timeout: float,
    max_body: int = MAX_BODY,
    max_redirects: int = MAX_REDIRECTS,
    ssl_context: ssl.SSLContext | None = None,
) -> Response:
    """GET *url*, following up to *max_redirects* redirects (http and https only), all
    within *timeout* seconds; the final answer whatever its status. *ssl_context* is the
    system's default for https unless given."""
    target = _target(url)
    try:
        async with asyncio.timeout(timeout):
            for _ in range(max_redirects + 1):
                answer = _Answer(max_body)
                await _once(target, answer, ssl_context)
                status = answer.parser.get_status_code()
                if status in REDIRECTS and answer.location is not None:
                    url, target = _redirect(url, answer.location)
                    continue
                reason = answer.reason.decode("latin-1").strip()
                return Response(status, reason, b"".join(answer.body), url)
    except TimeoutError:
        raise HTTPGetError(f"no answer within {timeout:g} s") from None
    raise HTTPGetError(f"more than {max_redirects} redirects")


# For swarm.webseed_conn, which sends its own keep-alive range requests.
Target = _Target
target = _target
redirect = _redirect
describe = _describe
