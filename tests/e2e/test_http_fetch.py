"""``swarm fetch http://...`` as a real process: against ``swarm serve-central``, and against a
scripted server on 127.0.0.1 that answers the way real servers go wrong (a body cut short, a
range that is not the one asked for, a compressed body, a redirect loop). What a user sees is
what is checked: the exit code, the one-line error, and what is left in the output folder."""

from __future__ import annotations

import gzip
import random
import signal
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from procutil import Proc, wait_for

from swarm.create import create_torrent

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SIZE = 300_000
FETCH_TIMEOUT = 30  # seconds; every fetch here ends long before (a hang is a failure)


def fetch(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``swarm fetch ARGS --no-seed`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "swarm", "fetch", *map(str, args), "--no-seed"],
        capture_output=True,
        text=True,
        timeout=FETCH_TIMEOUT,
        cwd=cwd,
    )


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line a failed command prints (and nothing else on stderr)."""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0].removeprefix("error: ")


def tree(path: Path) -> list[str]:
    """Every path under *path*, relative, sorted ([] if *path* is not there)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def data() -> bytes:
    return random.Random(13).randbytes(SIZE)  # file.bin


@pytest.fixture
def central(tmp_path: Path, procs: Callable[..., Proc], data: bytes) -> str:
    """A ``swarm serve-central`` of a folder holding file.bin (*data*); its base URL."""
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / "file.bin").write_bytes(data)
    p = procs("serve-central", tmp_path / "pub", "--host", "127.0.0.1", "--port", "0")
    return p.wait_line(lambda s: s.startswith("serving ")).split(" at ")[1]


def torrent_of(tmp_path: Path, name: str, content: bytes) -> Path:
    """A single-file .torrent for *content* named *name*."""
    src = tmp_path / "torrents" / name
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(content)
    out = tmp_path / f"{name}-{len(content)}.torrent"
    out.write_bytes(create_torrent(src, piece_length=16384))
    return out


# -- a scripted HTTP server ------------------------------------------------------------------

HOLD = None  # in a script: keep the connection open, sending nothing more, until released


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # lower-case names


Script = Callable[[Request], list[bytes | None]]


class ScriptedServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.requests: list[Request] = []
        self.release = threading.Event()  # set by the test, or at its end

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _Handler(socketserver.StreamRequestHandler):
    server: ScriptedServer

    def handle(self) -> None:
        self.request.settimeout(FETCH_TIMEOUT)
        try:
            line = self.rfile.readline().decode("latin-1")
            headers: dict[str, str] = {}
            while (h := self.rfile.readline().decode("latin-1").strip()) != "":
                name, _, value = h.partition(":")
                headers[name.strip().lower()] = value.strip()
            req = Request(line.split(" ")[1], headers)
            self.server.requests.append(req)
            for part in self.server.script(req):
                if part is HOLD:
                    self.server.release.wait(FETCH_TIMEOUT)
                    return
                self.wfile.write(part)
                self.wfile.flush()
        except OSError:
            pass  # the client hung up: that is its right


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        s = ScriptedServer(script)
        threading.Thread(
            target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.release.set()
        s.shutdown()
        s.server_close()


def head(status: str, **headers: object) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def first_byte(req: Request) -> int:
    """The N of the request's ``Range: bytes=N-`` (0 without one)."""
    rng = req.headers.get("range", "bytes=0-")
    return int(rng.removeprefix("bytes=").split("-")[0])


# -- item 6 of issue 13: no debris, one message for one mistake, the length checked at once ---


@pytest.mark.parametrize("made", [False, True], ids=["new-folder", "existing-folder"])
@pytest.mark.parametrize("case", ["404", "refused", "tls-to-plain-http"])
def test_a_failed_fetch_leaves_nothing_behind(
    tmp_path: Path, central: str, case: str, made: bool
) -> None:
    out = tmp_path / "out"
    if made:
        out.mkdir()
    url = {
        "404": central + "nothing.bin",
        "refused": f"http://127.0.0.1:{closed_port()}/file.bin",
        "tls-to-plain-http": central.replace("http://", "https://") + "file.bin",
    }[case]
    r = fetch(url, "-o", out)
    message = one_line_error(r)
    want_code, want_words = {
        "404": (2, "not found on the server (HTTP 404)"),
        "refused": (1, "Connection refused"),
        "tls-to-plain-http": (2, "does not speak TLS (plain HTTP?): try http://127.0.0.1:"),
    }[case]
    assert r.returncode == want_code and want_words in message, message
    assert out.exists() == made and tree(out) == []


def test_a_failed_fetch_removes_an_empty_part_and_keeps_resumable_bytes(
    tmp_path: Path, central: str, data: bytes
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "nothing.bin.part").write_bytes(b"")  # left by an older swarm: it holds nothing
    r = fetch(central + "nothing.bin", "-o", out)
    assert r.returncode == 2 and tree(out) == []

    (out / "file.bin.part").write_bytes(data[:100_000])  # an interrupted transfer: resume it
    r = fetch(f"http://127.0.0.1:{closed_port()}/file.bin", "-o", out)
    assert r.returncode == 1 and tree(out) == ["file.bin.part"]
    assert (out / "file.bin.part").read_bytes() == data[:100_000]
    r = fetch(central + "file.bin", "-o", out)
    assert r.returncode == 0, r.stderr
    assert tree(out) == ["file.bin"] and (out / "file.bin").read_bytes() == data


@pytest.mark.parametrize("sent", [0, 5 << 19], ids=["no-byte-yet", "2.5MiB"])
def test_ctrl_c_keeps_a_part_with_bytes_and_removes_one_without(
    tmp_path: Path,
    scripted: Callable[[Script], ScriptedServer],
    procs: Callable[..., Proc],
    sent: int,
) -> None:
    big = random.Random(5).randbytes(4 << 20)
    server = scripted(lambda req: [head("200 OK", Content_Length=len(big)), big[:sent], HOLD])
    out = tmp_path / "out"
    part = out / "big.bin.part"
    p = procs("fetch", server.url + "big.bin", "-o", out, "--no-seed")
    # The .part is made when the answer comes; with bytes sent, wait for a first write.
    least = min(sent, 1 << 20)
    wait_for(lambda: part.exists() and part.stat().st_size >= least, 20, "the .part")
    p.popen.send_signal(signal.SIGINT)
    p.wait_exit(FETCH_TIMEOUT)
    if sent:
        assert tree(out) == ["big.bin.part"] and big.startswith(part.read_bytes())
        assert part.stat().st_size >= least
    else:
        assert tree(out) == []


def test_output_that_is_a_file_is_the_same_usage_error_as_for_a_torrent(tmp_path: Path) -> None:
    (tmp_path / "taken").write_bytes(b"mine")
    torrent = torrent_of(tmp_path, "file.bin", b"x" * 1000)
    # No server is there: the mistake is found before any connection is tried.
    url = f"http://127.0.0.1:{closed_port()}/file.bin"
    for out in ("taken", "taken/sub"):
        by_torrent = fetch(torrent, "-o", out, cwd=tmp_path)
        assert by_torrent.returncode == 2
        assert one_line_error(by_torrent) == "taken is not a folder"
        by_url = fetch(url, "-o", out, cwd=tmp_path)
        assert by_url.returncode == 2 and one_line_error(by_url) == "taken is not a folder"
    assert (tmp_path / "taken").read_bytes() == b"mine"


@pytest.mark.parametrize("answer", ["200", "206", "200-no-length"])
def test_a_torrent_of_another_length_fails_on_the_first_response(
    tmp_path: Path, scripted: Callable[[Script], ScriptedServer], data: bytes, answer: str
) -> None:
    """The server answers for a 300000-byte file and then sends nothing more (the download
    would never end): the wrong --torrent (5000 bytes) is found from the headers: a 200's
    Content-Length, a resumed 206's Content-Range; without a length, as soon as the body
    passes the torrent's. A .part keeps what it had, or the server's bytes up to the limit."""
    heads = {
        "200": head("200 OK", Content_Length=SIZE),
        "206": head("206 Partial Content", Content_Range=f"bytes 1000-{SIZE - 1}/{SIZE}"),
        "200-no-length": head("200 OK", Connection="close"),
    }
    sent = data[1000:] if answer == "206" else data
    server = scripted(lambda req: [heads[answer], sent[: 1000 if answer == "200" else SIZE], HOLD])
    wrong = torrent_of(tmp_path, "file.bin", data[:5000])
    out = tmp_path / "out"
    if answer == "206":
        out.mkdir()
        (out / "file.bin.part").write_bytes(data[:1000])
    r = fetch(server.url + "file.bin", "-o", out, "--torrent", wrong)
    message = one_line_error(r)
    assert r.returncode == 2 and "5000" in message and "--torrent" in message, message
    assert ("300000 bytes" in message) == (answer != "200-no-length")
    kept = {"200": b"", "206": data[:1000], "200-no-length": data[:5000]}[answer]
    assert tree(out) == (["file.bin.part"] if kept else [])
    assert not kept or (out / "file.bin.part").read_bytes() == kept


def test_a_multi_file_torrent_is_refused_before_any_connection(tmp_path: Path) -> None:
    for name in ("a.bin", "b.bin"):
        torrent_of(tmp_path, name, name.encode() * 50)  # both in tmp_path/torrents
    torrent = tmp_path / "album.torrent"
    torrent.write_bytes(create_torrent(tmp_path / "torrents"))
    url = f"http://127.0.0.1:{closed_port()}/a.bin"
    r = fetch(url, "-o", tmp_path / "out", "--torrent", torrent)
    assert r.returncode == 2 and "single-file torrent" in one_line_error(r)
    assert not (tmp_path / "out").exists()


# -- siblings: servers that answer other than asked ------------------------------------------


def test_a_body_cut_short_keeps_its_bytes_for_the_next_run(
    tmp_path: Path, scripted: Callable[[Script], ScriptedServer], procs: Callable[..., Proc]
) -> None:
    """4 MiB announced, a hang-up after 2.5: the bytes that came stay in the .part (those read;
    aiohttp drops what it had not handed over yet), and the next run asks only for the rest."""
    big = random.Random(4).randbytes(4 << 20)
    cut = scripted(lambda req: [head("200 OK", Content_Length=len(big)), big[: 5 << 19], HOLD])
    out = tmp_path / "out"
    part = out / "big.bin.part"
    p = procs("fetch", cut.url + "big.bin", "-o", out, "--no-seed")
    wait_for(lambda: part.exists() and part.stat().st_size >= 1 << 20, 20, "a first 1 MiB write")
    cut.release.set()  # the server hangs up mid-body
    assert p.wait_exit(FETCH_TIMEOUT) == 1
    assert len(p.err) == 1 and p.err[0].endswith("mid-file; run again to resume"), p.err
    kept = part.read_bytes()
    assert len(kept) >= 1 << 20 and big.startswith(kept)

    def ranges(req: Request) -> list[bytes | None]:
        first = first_byte(req)
        crange = f"bytes {first}-{len(big) - 1}/{len(big)}"
        return [head("206 Partial Content", Content_Range=crange), big[first:]]

    whole = scripted(ranges)
    r = fetch(whole.url + "big.bin", "-o", out)
    assert r.returncode == 0, r.stderr
    assert tree(out) == ["big.bin"] and (out / "big.bin").read_bytes() == big
    assert [first_byte(q) for q in whole.requests] == [len(kept)]

    # Headers and no body at all: nothing worth keeping.
    empty = scripted(lambda req: [head("200 OK", Content_Length=len(big))])
    r = fetch(empty.url + "other.bin", "-o", out)
    assert r.returncode == 1 and tree(out) == ["big.bin"]


@pytest.mark.parametrize(
    ("answer", "asked"), [("past-the-end", [1000, 0]), ("short", [1000, 101_000, 201_000])]
)
def test_a_range_other_than_asked_for_is_never_spliced_in(
    tmp_path: Path,
    scripted: Callable[[Script], ScriptedServer],
    data: bytes,
    answer: str,
    asked: list[int],
) -> None:
    """A 206 past the file's end: ask for the whole file (not write it into the .part). A
    shorter one than asked (RFC 9110 allows it): ask for the rest (not stop, "run again")."""

    def ranges(req: Request) -> list[bytes | None]:
        first = first_byte(req)
        if not first:
            return [head("200 OK", Content_Length=SIZE), data]
        last = SIZE + 5000 if answer == "past-the-end" else min(first + 99_999, SIZE - 1)
        body = data[first : last + 1]
        crange = f"bytes {first}-{last}/{SIZE}"
        return [head("206 Partial Content", Content_Range=crange, Content_Length=len(body)), body]

    server = scripted(ranges)
    out = tmp_path / "out"
    out.mkdir()
    (out / "file.bin.part").write_bytes(data[:1000])
    r = fetch(server.url + "file.bin", "-o", out)
    assert r.returncode == 0, r.stderr
    assert tree(out) == ["file.bin"] and (out / "file.bin").read_bytes() == data
    assert [first_byte(q) for q in server.requests] == asked


def test_a_compressed_body_is_not_saved_as_the_file(
    tmp_path: Path, scripted: Callable[[Script], ScriptedServer], data: bytes
) -> None:
    body = gzip.compress(data)
    server = scripted(
        lambda req: [head("200 OK", Content_Length=len(body), Content_Encoding="gzip"), body]
    )
    r = fetch(server.url + "file.bin", "-o", tmp_path / "out")
    assert r.returncode == 1 and "Content-Encoding: gzip" in one_line_error(r)
    assert tree(tmp_path / "out") == []


def test_redirects_are_followed_and_a_loop_is_one_line(
    tmp_path: Path, scripted: Callable[[Script], ScriptedServer], central: str, data: bytes
) -> None:
    moved = scripted(
        lambda req: [head("302 Found", Location=central + "file.bin", Content_Length=0)]
    )
    out = tmp_path / "out"
    r = fetch(moved.url + "old-name.bin", "-o", out)
    assert r.returncode == 0, r.stderr
    # Saved under the name asked for, as curl -O and wget do.
    assert tree(out) == ["old-name.bin"] and (out / "old-name.bin").read_bytes() == data

    loop = scripted(lambda req: [head("302 Found", Location=req.path, Content_Length=0)])
    r = fetch(loop.url + "file.bin", "-o", tmp_path / "out2")
    assert r.returncode == 1 and one_line_error(r).endswith("redirected more than 10 times")
    ftp = scripted(lambda req: [head("302 Found", Location="ftp://x/file.bin", Content_Length=0)])
    r = fetch(ftp.url + "file.bin", "-o", tmp_path / "out2")
    assert r.returncode == 1
    assert one_line_error(r).endswith("redirected to ftp://x/file.bin, not an http(s) URL")
    assert not (tmp_path / "out2").exists()


def test_a_file_already_there_and_whole_is_not_fetched_again(tmp_path: Path, data: bytes) -> None:
    """Checked against --torrent before any connection (the URL's port is closed)."""
    torrent = torrent_of(tmp_path, "file.bin", data)
    out = tmp_path / "out"
    out.mkdir()
    (out / "file.bin").write_bytes(data)
    r = fetch(f"http://127.0.0.1:{closed_port()}/file.bin", "-o", out, "--torrent", torrent)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert tree(out) == ["file.bin"] and (out / "file.bin").read_bytes() == data
