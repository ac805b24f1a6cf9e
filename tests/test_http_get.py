"""The announce's HTTP client against real servers on 127.0.0.1 (port 0) that answer with
scripted bytes: bodies framed every way, redirects, errors, servers that misbehave, TLS.

Every wait is bounded; nothing sleeps to wait for a condition.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted_http import answer, ok, redirect, routes, serve, tls_contexts

from swarm import __version__, http_get
from swarm.http_get import HTTPGetError, Response, get

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(30):
            return await coro

    return asyncio.run(bounded())


async def fetch(data: bytes, path: str = "/", **kwargs: Any) -> Response:
    """GET *path* from a server that answers *data* and closes."""
    async with serve(answer(data)) as server:
        return await get(server.url(path), timeout=5, **kwargs)


def fails(data: bytes, message: str, **kwargs: Any) -> None:
    with pytest.raises(HTTPGetError, match=message):
        run(fetch(data, **kwargs))


# -- the request, without sockets ---------------------------------------------------------------


def test_the_request_says_what_an_announce_needs_and_keeps_the_raw_query() -> None:
    target = http_get._target("http://t.example:6969/announce?info_hash=%00%FF%20&x=1")
    assert (target.https, target.host, target.port) == (False, "t.example", 6969)
    assert target.request == (
        b"GET /announce?info_hash=%00%FF%20&x=1 HTTP/1.1\r\n"
        b"Host: t.example:6969\r\n"
        b"User-Agent: swarm/" + __version__.encode() + b"\r\n"
        b"Accept-Encoding: identity\r\n"
        b"Connection: close\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("url", "host", "port", "line", "authority"),
    [
        ("https://T.example/a", "t.example", 443, b"GET /a HTTP/1.1", b"t.example"),
        ("http://t:80", "t", 80, b"GET / HTTP/1.1", b"t"),
        ("https://t:8443/a", "t", 8443, b"GET /a HTTP/1.1", b"t:8443"),
        ("http://[::1]:8080/a", "::1", 8080, b"GET /a HTTP/1.1", b"[::1]:8080"),
        ("http://[2001:db8::1]/", "2001:db8::1", 80, b"GET / HTTP/1.1", b"[2001:db8::1]"),
        # What may not stand in a request line is percent-encoded, never sent raw.
        (
            "http://t/a b/\u00e9?q=\u00e9 x",
            "t",
            80,
            b"GET /a%20b/%C3%A9?q=%C3%A9%20x HTTP/1.1",
            b"t",
        ),
        ("http://b\u00fccher.example/", "xn--bcher-kva.example", 80, b"GET / HTTP/1.1", None),
    ],
)
def test_request_targets(url: str, host: str, port: int, line: bytes, authority: bytes) -> None:
    target = http_get._target(url)
    assert (target.host, target.port) == (host, port)
    first, host_line = target.request.split(b"\r\n")[:2]
    assert first == line
    assert host_line == b"Host: " + (authority or host.encode())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://t/a", "not an http"),
        ("http:///a", "bad host"),
        ("http://t:99999/a", "bad URL"),
        ("http://[::1/a", "bad URL"),
        ("http://a\x00b/", "bad host"),
        ("http://a..b/", "bad host"),
        ("http://" + "a" * 64 + ".example/", "bad host"),
    ],
)
def test_urls_that_cannot_be_asked(url: str, message: str) -> None:
    with pytest.raises(HTTPGetError, match=message):
        http_get._target(url)


# -- the answer, without sockets ----------------------------------------------------------------


def read(pieces: list[bytes], max_body: int = 1 << 20) -> bytes:
    """Feed *pieces* as they would arrive, then the end of the stream: the body."""
    answer = http_get._Answer(max_body)
    for piece in pieces:
        if answer.complete:
            break
        answer.feed(piece)
    if not answer.complete:
        answer.eof()
    return b"".join(answer.body)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=3000),
    st.sampled_from(["length", "chunked", "eof"]),
    st.lists(st.integers(min_value=1, max_value=700), min_size=1),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_a_body_cut_anywhere_comes_out_whole(
    body: bytes, framing: str, chunk_sizes: list[int], points: list[int]
) -> None:
    head = b"HTTP/1.1 200 OK\r\n"
    if framing == "length":
        data = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    elif framing == "eof":
        data = head + b"\r\n" + body
    else:
        chunks: list[bytes] = []
        i = 0
        while i < len(body):
            n = chunk_sizes[len(chunks) % len(chunk_sizes)]
            chunks.append(body[i : i + n])
            i += n
        data = head + b"Transfer-Encoding: chunked\r\n\r\n"
        data += b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
        data += b"0\r\n\r\n"
    assert read(cut(data, points)) == body


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"HTTP/1.1 " + b)),
    st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_whatever_a_server_sends_is_an_answer_or_an_http_get_error(
    data: bytes, points: list[int]
) -> None:
    try:
        read(cut(data, points), max_body=100)
    except HTTPGetError:
        pass


# -- answers ------------------------------------------------------------------------------------


def test_content_length_body_and_what_the_server_saw() -> None:
    async def main() -> None:
        async with serve(answer(ok(b"d8:intervali60ee"))) as server:
            resp = await get(server.url("/announce?info_hash=%01%02"), timeout=5)
        assert (resp.status, resp.reason, resp.body) == (200, "OK", b"d8:intervali60ee")
        (head,) = server.heads
        lines = head.decode().split("\r\n")
        assert lines[0] == "GET /announce?info_hash=%01%02 HTTP/1.1"
        assert f"Host: {server.authority}" in lines
        assert f"User-Agent: swarm/{__version__}" in lines
        assert {"Accept-Encoding: identity", "Connection: close"} <= set(lines)

    run(main())


def test_chunked_body_in_pieces() -> None:
    async def script(head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        await writer.drain()
        writer.write(b"lo\r\n3;ext=1\r\n, w\r\n")
        await writer.drain()
        writer.write(b"4\r\norld\r\n0\r\nX-Trailer: 1\r\n\r\n")

    async def main() -> Response:
        async with serve(script) as server:
            return await get(server.url(), timeout=5)

    assert run(main()).body == b"hello, world"


def test_body_that_ends_when_the_server_closes() -> None:
    assert run(fetch(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")).body == b"until the end"
    assert run(fetch(b"HTTP/1.0 200 OK\r\n\r\n")).body == b""


def test_an_informational_answer_before_the_real_one_is_skipped() -> None:
    resp = run(fetch(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"yes")))
    assert (resp.status, resp.body) == (200, b"yes")


def test_servers_that_bend_the_rules_as_aiohttp_allows() -> None:
    assert run(fetch(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")).body == b"ok"
    assert run(fetch(b"HTTP/1.0 200 OK\r\nX: a\x01b\r\nContent-Length: 2\r\n\r\nok")).body == b"ok"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2  \r\nok\r\n0\r\n\r\n"
    assert run(fetch(chunked)).body == b"ok"
    assert run(fetch(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok")).reason == ""


def test_error_statuses_are_answers_with_their_status() -> None:
    resp = run(fetch(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"))
    assert (resp.status, resp.reason, resp.body) == (404, "Not Found", b"nope")
    assert run(fetch(b"HTTP/1.1 500 \r\nContent-Length: 0\r\n\r\n")).status == 500
    # A redirect without a Location is an answer too: there is nowhere to go.
    assert run(fetch(b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n")).status == 302


# -- redirects ----------------------------------------------------------------------------------


def test_a_chain_of_five_redirects_of_every_kind_relative_and_absolute() -> None:
    async def main() -> None:
        table: dict[str, bytes] = {}
        async with serve(routes(table)) as server:
            table.update(
                {
                    "/r0": redirect(301, "/r1"),
                    "/r1": redirect(302, "r2?x=%01"),
                    "/r2?x=%01": redirect(303, server.url("/r3")),
                    "/r3": redirect(307, f"//{server.authority}/r4"),
                    "/r4": redirect(308, "/end"),
                    "/end": ok(b"here"),
                }
            )
            resp = await get(server.url("/r0"), timeout=5)
        assert (resp.status, resp.body, resp.url) == (200, b"here", server.url("/end"))
        paths = [head.split(b" ")[1] for head in server.heads]
        assert paths == [b"/r0", b"/r1", b"/r2?x=%01", b"/r3", b"/r4", b"/end"]

    run(main())


def test_a_redirect_loop_ends_after_five_redirects() -> None:
    async def main() -> None:
        async with serve(routes({"/a": redirect(302, "/b"), "/b": redirect(302, "/a")})) as server:
            with pytest.raises(HTTPGetError, match="more than 5 redirects"):
                await get(server.url("/a"), timeout=5)
        assert len(server.heads) == 6

    run(main())


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("ftp://t/a", r"redirected to 'ftp://t/a': not an http\(s\) URL"),
        ("http://[::1/a", r"redirected to 'http://\[::1/a': bad URL"),
        ("http://a..b/", "redirected to 'http://a..b/': bad host name"),
    ],
)
def test_a_redirect_to_where_we_cannot_go_is_refused(location: str, message: str) -> None:
    fails(redirect(301, location), message)


def test_a_redirect_with_utf8_in_its_location() -> None:
    async def main() -> None:
        table = {"/a": redirect(302, "/caf\u00e9?q=\u00e9"), "/caf%C3%A9?q=%C3%A9": ok(b"found")}
        async with serve(routes(table)) as server:
            assert (await get(server.url("/a"), timeout=5)).body == b"found"

    run(main())


# -- failures -----------------------------------------------------------------------------------


def test_a_body_over_the_limit() -> None:
    fails(ok(b"x" * 1001), "longer than 1000 bytes", max_body=1000)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"100\r\n" + b"y" * 256
    fails(chunked + b"\r\n0\r\n\r\n", "longer than 200 bytes", max_body=200)
    fails(b"HTTP/1.1 200 OK\r\n\r\n" + b"z" * 3000, "longer than 2000 bytes", max_body=2000)
    assert len(run(fetch(ok(b"x" * (1 << 20)))).body) == 1 << 20  # the default: 1 MiB
    fails(ok(b"x" * ((1 << 20) + 1)), "longer than 1 MiB")


def test_endless_headers_are_over_the_limit() -> None:
    pad = b"X-Pad: " + b"p" * 100 + b"\r\n"
    fails(b"HTTP/1.1 200 OK\r\n" + pad * 2000, "longer than 1000 bytes", max_body=1000)


def test_a_server_that_never_answers_times_out() -> None:
    async def script(head: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()  # cancelled when the server stops

    async def main() -> None:
        async with serve(script) as server:
            with pytest.raises(HTTPGetError, match="no answer within 0.2 s"):
                await get(server.url(), timeout=0.2)
        assert len(server.heads) == 1

    run(main())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", "in the middle"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort", "in the middle"),
        (b"HTTP/1.1 200 OK\r\nContent-", "without an answer"),
        (b"", "without an answer"),
    ],
)
def test_a_server_that_closes_too_soon(data: bytes, message: str) -> None:
    fails(data, message)


@pytest.mark.parametrize(
    "data",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_a_malformed_answer(data: bytes) -> None:
    fails(data, "not HTTP")


def test_a_refused_connection() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connecting is refused
        with pytest.raises(HTTPGetError, match=f"127.0.0.1:{port} refused the connection"):
            run(get(f"http://127.0.0.1:{port}/a", timeout=5))


def test_a_name_that_does_not_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    # The resolver is stood in for: a real lookup of a missing name may wait on DNS servers
    # for many seconds, in a thread no time-out can stop.
    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(HTTPGetError, match=r"^cannot resolve nowhere\.invalid \(Name or service"):
        run(get("http://nowhere.invalid/a", timeout=5))


def test_an_ipv6_literal_host() -> None:
    async def main() -> None:
        async with serve(answer(ok(b"six")), host="::1") as server:
            assert (await get(server.url("/a"), timeout=5)).body == b"six"
        assert f"Host: {server.authority}\r\n".encode() in server.heads[0]

    try:
        socket.socket(socket.AF_INET6).close()
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    run(main())


# -- TLS ----------------------------------------------------------------------------------------


Contexts = tuple[ssl.SSLContext, ssl.SSLContext]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Contexts:
    """(server, client) TLS contexts: a self-signed certificate and a client that trusts it."""
    return tls_contexts(tmp_path_factory.mktemp("tls"))


def test_https_with_a_trusted_certificate(tls: Contexts) -> None:
    server_ctx, client_ctx = tls

    async def main() -> Response:
        async with serve(answer(ok(b"secret")), ssl_context=server_ctx) as server:
            return await get(server.url("/a"), timeout=5, ssl_context=client_ctx)

    resp = run(main())
    assert (resp.status, resp.body, resp.url[:8]) == (200, b"secret", "https://")


def test_https_with_an_untrusted_certificate_fails(tls: Contexts) -> None:
    server_ctx, _ = tls

    async def main() -> None:
        async with serve(answer(ok(b"secret")), ssl_context=server_ctx) as server:
            await get(server.url("/a"), timeout=5)  # the system's trust store

    with pytest.raises(HTTPGetError, match="TLS with 127.0.0.1:[0-9]+ failed: .*self.signed"):
        run(main())


def test_plain_http_to_a_tls_server_is_not_http(tls: Contexts) -> None:
    server_ctx, _ = tls

    async def main() -> None:
        async with serve(answer(b""), ssl_context=server_ctx) as server:
            await get(server.url("/a").replace("https:", "http:"), timeout=5)

    with pytest.raises(HTTPGetError):
        run(main())


def test_the_default_tls_context_is_made_once_on_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_get, "_default_context", None)
    first = http_get.default_ssl_context()
    assert http_get.default_ssl_context() is first
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
