"""The CLI's conventions: `swarm create` and `swarm info`, exit codes, one-line errors, no
tracebacks, --help everywhere. In process (main() and click's runner) and as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from swarm import bencoding, metainfo
from swarm.cli import SETTINGS, cli, main
from swarm.status import Event, Status, decode

COMMANDS = ["create", "info", "tracker", "seed", "fetch", "serve-central", "compare"]


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m swarm ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "swarm", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def assert_one_line_error(stderr: str, *words: str) -> None:
    assert stderr.startswith("error: "), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in stderr, stderr


@pytest.fixture(autouse=True)
def _reset_settings() -> Iterator[None]:
    # click's runner calls the group directly, so -q/--debug would leak into later tests.
    yield
    SETTINGS.verbose, SETTINGS.quiet, SETTINGS.debug = 0, False, False


@pytest.fixture
def song(make_file: Callable[..., Path]) -> Path:
    return make_file("song.bin", 100_000)


@pytest.fixture
def album(make_file: Callable[..., Path]) -> Path:
    make_file("Album é/cd1/01.flac", 30_000)
    make_file("Album é/cd1/.hidden", 3)
    make_file("Album é/cover.jpg", 20_000)
    make_file("Album é/empty.txt", b"")
    return make_file("Album é/cd2/01.flac", 17).parents[1]


# -- in process ----------------------------------------------------------------------------


def test_create_and_info_with_click_runner(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "song.torrent"
    result = CliRunner().invoke(
        cli, ["create", str(song), "-o", str(out), "-t", "http://a/announce"]
    )
    assert result.exit_code == 0, result.output
    t = metainfo.load(out)
    assert result.stdout.splitlines() == [
        f"torrent:   {out}",
        f"info-hash: {t.info_hash_hex}",
        f"magnet:    {t.magnet()}",
    ]
    result = CliRunner().invoke(cli, ["info", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["info_hash"] == t.info_hash_hex
    result = CliRunner().invoke(cli, ["info", str(out)])
    assert result.exit_code == 0
    assert "name:         song.bin" in result.stdout
    assert f"info-hash:    {t.info_hash_hex}" in result.stdout
    assert "tracker 0     http://a/announce" in result.stdout


def test_create_writes_name_torrent_in_the_current_folder_by_default(
    song: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["create", str(song), "-q"]) == 0
    assert metainfo.load(work / "song.bin.torrent").length == 100_000


def test_info_json_of_a_folder(
    album: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "album.torrent"
    args = ["create", str(album), "-o", str(out), "--private", "--piece-length", "16K"]
    args += ["-t", "http://t1/a,http://t2/a", "-t", "udp://t3:1", "--webseed", "http://w/"]
    args += ["--comment", "hi"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["info", "--json", str(out)]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["name"] == "Album é"
    assert obj["files"] == [
        {"path": "Album é/cd1/01.flac", "length": 30_000},
        {"path": "Album é/cd2/01.flac", "length": 17},
        {"path": "Album é/cover.jpg", "length": 20_000},
        {"path": "Album é/empty.txt", "length": 0},
    ]
    assert obj["length"] == 50_017 and obj["piece_length"] == 16384 and obj["pieces"] == 4
    assert obj["announce"] == ["http://t1/a", "http://t2/a", "udp://t3:1"]
    assert obj["private"] is True and obj["url_list"] == ["http://w/"]
    assert obj["comment"] == "hi"


@pytest.mark.parametrize(
    ("size", "piece_length"),
    [("16K", 16384), ("64KiB", 65536), ("1M", 1 << 20), ("32768", 32768), ("2mb", 2 << 20)],
)
def test_piece_length_with_units(song: Path, tmp_path: Path, size: str, piece_length: int) -> None:
    out = tmp_path / "x.torrent"
    assert main(["create", str(song), "-o", str(out), "--piece-length", size, "-q"]) == 0
    assert metainfo.load(out).piece_length == piece_length


def test_create_refuses_to_overwrite_without_force(
    song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "song.torrent"
    out.write_bytes(b"precious")
    assert main(["create", str(song), "-o", str(out)]) == 2
    assert_one_line_error(capsys.readouterr().err, "exists", "--force")
    assert out.read_bytes() == b"precious"
    assert main(["create", str(song), "-o", str(out), "--force", "-q"]) == 0
    assert metainfo.load(out).name == "song.bin"
    assert capsys.readouterr().out == ""  # -q


def _malformed(tmp: Path) -> Path:
    (tmp / "bad.torrent").write_bytes(b"d4:infod4:name")
    return tmp / "bad.torrent"


def _unsafe(tmp: Path) -> Path:
    files = [{b"length": 1, b"path": [b"..", b"evil"]}]
    info = {b"name": b"x", b"piece length": 16384, b"pieces": b"\x00" * 20, b"files": files}
    (tmp / "unsafe.torrent").write_bytes(bencoding.encode({b"info": info}))
    return tmp / "unsafe.torrent"


def _too_big(tmp: Path) -> Path:
    (tmp / "big.torrent").write_bytes(b"d1:x" + b"0:" * (11 * 1024 * 512) + b"e")
    return tmp / "big.torrent"


BAD_INFO = [
    pytest.param(lambda p: p / "missing.torrent", ["no such file"], id="missing"),
    pytest.param(_malformed, ["bad.torrent", "bencoding"], id="malformed"),
    pytest.param(lambda p: p, ["is a folder"], id="folder"),
    pytest.param(_unsafe, ["leave the output folder"], id="unsafe-path"),
    pytest.param(_too_big, ["limit"], id="too-big"),
]


@pytest.mark.parametrize(("make", "words"), BAD_INFO)
def test_info_bad_input_in_process(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], Path],
    words: list[str],
) -> None:
    assert main(["info", str(make(tmp_path))]) == 2
    captured = capsys.readouterr()
    assert_one_line_error(captured.err, *words)
    assert captured.out == ""


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["create", "/nonexistent/x"], ["no such file"]),
        (["create", "{song}", "--piece-length", "3X"], ["--piece-length", "3X"]),
        (["create", "{song}", "--piece-length", "1000"], ["power of two"]),
        (["create", "{song}", "--bogus"], ["--bogus"]),
        (["create", "{song}", "-o", "/nonexistent/dir/x.torrent"], ["cannot write"]),
        (["create"], ["Missing argument"]),
        (["info"], ["Missing argument"]),
        (["nonsense"], ["nonsense"]),
    ],
)
def test_create_bad_input_in_process(
    song: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    assert main([a.replace("{song}", str(song)) for a in args]) == 2
    assert_one_line_error(capsys.readouterr().err, *words)


def test_create_with_a_non_utf8_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "d"
    root.mkdir()
    with open(os.path.join(os.fsencode(root), b"bad\xff.bin"), "wb") as f:
        f.write(b"y" * 10)
    code = main(["create", str(root), "-o", str(tmp_path / "d.torrent")])
    err = capsys.readouterr().err
    assert code in (0, 2) and "unexpected failure" not in err


def test_debug_flag_lets_the_traceback_through(tmp_path: Path) -> None:
    with pytest.raises(metainfo.MetainfoError):
        main(["info", "--debug", str(tmp_path / "missing.torrent")])


@pytest.mark.parametrize("command", COMMANDS)
def test_help_everywhere(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert "Usage:" in capsys.readouterr().out


def test_top_level_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("create", "info"))
    assert main(["--version"]) == 0
    assert "swarm" in capsys.readouterr().out


# -- real processes ------------------------------------------------------------------------


def test_create_then_info_as_processes(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "song.torrent"
    r = run(
        "create",
        song,
        "-o",
        out,
        "-t",
        "http://a/announce",
        "-t",
        "udp://b:1,udp://c:2",
        "--piece-length",
        "32K",
        "--webseed",
        "http://w/song.bin",
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == f"torrent:   {out}"
    info_hash = lines[1].removeprefix("info-hash: ")
    assert lines[2] == f"magnet:    magnet:?xt=urn:btih:{info_hash}&dn=song.bin&" + (
        "tr=http%3A%2F%2Fa%2Fannounce&tr=udp%3A%2F%2Fb%3A1&tr=udp%3A%2F%2Fc%3A2"
        "&ws=http%3A%2F%2Fw%2Fsong.bin"  # the web seed too (BEP 19), as libtorrent's magnets
    )

    r = run("info", "--json", out)
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    keys = {"info_hash", "name", "length", "piece_length", "pieces", "files", "announce"}
    assert keys | {"private", "url_list"} <= obj.keys()
    assert obj["info_hash"] == info_hash == info_hash.lower() and len(info_hash) == 40
    assert int(info_hash, 16) >= 0
    assert obj["name"] == "song.bin" and obj["length"] == 100_000
    assert obj["piece_length"] == 32768 and obj["pieces"] == 4
    assert obj["files"] == [{"path": "song.bin", "length": 100_000}]
    assert obj["announce"] == ["http://a/announce", "udp://b:1", "udp://c:2"]
    assert obj["private"] is False and obj["url_list"] == ["http://w/song.bin"]

    r = run("info", out)
    assert r.returncode == 0 and "song.bin" in r.stdout and info_hash in r.stdout


def test_info_json_of_a_folder_as_a_process(album: Path, tmp_path: Path) -> None:
    out = tmp_path / "album.torrent"
    assert run("create", album, "-o", out, "-q", "-t", "http://a/").returncode == 0
    r = run("info", "--json", out)
    obj = json.loads(r.stdout)
    assert [f["path"] for f in obj["files"]] == [
        "Album é/cd1/01.flac",
        "Album é/cd2/01.flac",
        "Album é/cover.jpg",
        "Album é/empty.txt",
    ]
    assert obj["announce"] == ["http://a/"] and obj["private"] is False


@pytest.mark.parametrize(("make", "words"), BAD_INFO)
def test_info_bad_input_as_a_process(
    tmp_path: Path, make: Callable[[Path], Path], words: list[str]
) -> None:
    r = run("info", make(tmp_path))
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r.stderr, *words)
    assert r.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["info", "/nonexistent.torrent"],
        ["info", "--bogus"],
        ["create", "/nonexistent"],
        ["create", ".", "--piece-length", "3X"],
        ["create", ".", "--unknown-option"],
        ["fetch", "--max-download-rate", "fast", "x.torrent"],
        ["seed", "/nonexistent"],
        ["tracker", "--port", "99999"],
    ],
)
def test_bad_input_is_exit_2_with_one_line(args: list[str]) -> None:
    r = run(*args)
    assert r.returncode == 2, (args, r.stderr)
    assert_one_line_error(r.stderr)


def test_create_refuses_to_overwrite_as_a_process(song: Path, tmp_path: Path) -> None:
    out = tmp_path / "song.torrent"
    assert run("create", song, "-o", out).returncode == 0
    before = out.read_bytes()
    r = run("create", song, "-o", out, "--comment", "changed")
    assert r.returncode == 2
    assert_one_line_error(r.stderr, "exists")
    assert out.read_bytes() == before
    assert run("create", song, "-o", out, "--force", "--comment", "changed").returncode == 0
    assert metainfo.load(out).comment == "changed"


@pytest.mark.parametrize("command", ["create", "info"])
def test_help_as_a_process(command: str) -> None:
    r = run(command, "--help")
    assert r.returncode == 0 and "Usage:" in r.stdout and r.stderr == ""


def test_port_in_use_is_a_runtime_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("tracker", "--port", str(port), "--no-udp")
        assert r.returncode == 1 and "already in use" in r.stderr and "Traceback" not in r.stderr
        r = run("serve-central", str(tmp_path), "--port", str(port))
        assert r.returncode == 1 and "already in use" in r.stderr


def test_create_help_starts_without_asyncio_or_the_engine() -> None:
    # bench/create times `swarm create --help` as start-up: the commands load lazily.
    code = (
        "import sys, contextlib, io\n"
        "from swarm.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['create', '--help'])\n"
        "heavy = ['asyncio', 'aiohttp', 'rich', 'swarm.session', 'swarm.compare', 'tracker']\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


# -- writing the .torrent: bad path (2) against a failure at run time (1) --------------------


def _file_size_limit() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))  # Python ignores SIGXFSZ: EFBIG


@pytest.mark.parametrize("command", ["create", "seed"])
def test_no_room_for_the_torrent_is_a_runtime_error(
    song: Path, tmp_path: Path, command: str
) -> None:
    """A .torrent that cannot be written for want of room (a file size limit here; a full
    disk takes the same path) is a failure at run time, exit 1; it used to exit 2."""
    out = tmp_path / "song.bin.torrent"
    args = ["create", song, "-o", out] if command == "create" else ["seed", song, "--port", "0"]
    r = subprocess.run(
        [sys.executable, "-m", "swarm", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_file_size_limit,
    )
    assert r.returncode == 1, r.stderr
    assert_one_line_error(r.stderr, f"cannot write {out}", "too large")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.bin"]  # no .tmp left


def test_create_under_a_file_is_bad_input(
    song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = song / "x.torrent"  # a path through a regular file: ENOTDIR
    assert main(["create", str(song), "-o", str(out)]) == 2
    assert_one_line_error(capsys.readouterr().err, f"cannot write {out}", "Not a directory")


# -- the status channel (--status-fd, for swarm compare) ------------------------------------


def run_with_status(*args: str | Path) -> tuple[subprocess.CompletedProcess[str], list[Status]]:
    """``python -m swarm ARGS --status-fd N`` to its end; its status lines."""
    r, w = os.pipe()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "swarm", *map(str, args), "--status-fd", str(w)],
            capture_output=True,
            text=True,
            timeout=60,
            pass_fds=(w,),
        )
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        return proc, [decode(line) for line in f]


def test_status_fd_reports_the_error_a_command_exits_with(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r, statuses = run_with_status("tracker", "--port", port, "--no-udp")
    assert r.returncode == 1
    message = r.stderr.strip().removeprefix("error: ")
    assert "already in use" in message
    assert statuses == [Status(Event.ERROR, message=message, exit_code=1)]
    r, statuses = run_with_status("seed", tmp_path / "missing")
    assert r.returncode == 2
    assert statuses == [
        Status(Event.ERROR, message=f"{tmp_path / 'missing'}: no such file or folder", exit_code=2)
    ]


def test_status_fd_that_is_not_open_is_bad_input() -> None:
    r = run("tracker", "--port", "0", "--status-fd", "97")
    assert r.returncode == 2
    assert_one_line_error(r.stderr, "--status-fd 97")


def test_status_fd_tells_where_the_tracker_listens() -> None:
    r, w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarm", "tracker", "--port", "0", "--status-fd", str(w)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=(w,),
    )
    os.close(w)
    try:
        assert select.select([r], [], [], 30)[0], "no status line within 30 s"
        status = decode(os.read(r, 4096))
        assert status.event is Event.LISTENING and status.port
        assert status.urls == (
            f"http://127.0.0.1:{status.port}/announce",
            f"udp://127.0.0.1:{status.port}/announce",
        )
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        os.close(r)
    assert out.splitlines()[:2] == list(status.urls)  # the human output is still there


# -- swarm tracker --allow ----------------------------------------------------------------------


def test_allow_list_from_a_folder_of_torrents_or_a_file_of_hashes(
    song: Path, album: Path, tmp_path: Path
) -> None:
    from swarm.cli.tracker import load_allow_list

    folder = tmp_path / "allowed"
    folder.mkdir()
    assert main(["create", str(song), "-o", str(folder / "a.torrent"), "-q"]) == 0
    assert main(["create", str(album), "-o", str(folder / "b.torrent"), "-q"]) == 0
    (folder / "notes.txt").write_text("not a torrent")
    hashes = {metainfo.load(folder / n).info_hash for n in ("a.torrent", "b.torrent")}
    assert load_allow_list(folder) == hashes
    listing = tmp_path / "allowed.txt"
    listing.write_text("# allowed\n\n" + "\n".join(f"  {h.hex().upper()}" for h in hashes) + "\n")
    assert load_allow_list(listing) == hashes


@pytest.mark.parametrize(
    ("text", "words"),
    [("# one bad line\nabc\n", ["allowed.txt:2", "40-hex"]), ("zz" * 20, ["allowed.txt:1"])],
)
def test_a_bad_allow_list_is_bad_input(tmp_path: Path, text: str, words: list[str]) -> None:
    listing = tmp_path / "allowed.txt"
    listing.write_text(text)
    r = run("tracker", "--port", "0", "--allow", listing)
    assert r.returncode == 2
    assert_one_line_error(r.stderr, *words)


# -- how seed and fetch end (issue 13): exit codes, lines, the port ------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_command_exits_128_plus_the_signal(sig: int, code: int) -> None:
    from swarm.cli.running import INTERRUPTED, run_until_signal

    async def interrupted(stop: asyncio.Event) -> int:
        os.kill(os.getpid(), sig)
        async with asyncio.timeout(10):
            await stop.wait()
        return INTERRUPTED

    async def stopped_normally(stop: asyncio.Event) -> int:
        os.kill(os.getpid(), sig)
        async with asyncio.timeout(10):
            await stop.wait()
        return 0

    assert run_until_signal(interrupted) == code
    assert run_until_signal(stopped_normally) == 0


def test_the_data_moving_commands_run_on_uvloop_with_a_quieter_garbage_collector() -> None:
    # In a process of its own: the tuning is the process's (freeze, thresholds).
    code = (
        "import asyncio, gc\n"
        "from swarm.cli.running import run_until_signal\n"
        "async def main(stop):\n"
        "    print(type(asyncio.get_running_loop()).__module__, gc.get_threshold()[0],"
        " gc.get_freeze_count() > 0)\n"
        "run_until_signal(main)\n"
        "run_until_signal(main, fast_loop=True)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    plain, fast = r.stdout.splitlines()
    assert plain == "asyncio.unix_events 700 False"
    assert fast == "uvloop 50000 True"


def test_the_done_line_counts_the_files_bytes_apart_from_the_rest() -> None:
    from swarm.cli.fetch import summary

    assert summary("a.bin", 1_048_576, 2.0, uploaded=3 << 20) == (
        "done: a.bin: 1048576 bytes in 2.00 s (512.0 KiB/s); uploaded 3.0 MiB"
    )
    line = summary(
        "a.bin", 65_536, 1.0, uploaded=0, wasted=49_152, repaired=1, hash_failures=1, banned=1
    )
    assert line == (
        "done: a.bin: 65536 bytes in 1.00 s (64.0 KiB/s); uploaded 0 B; 48.0 KiB wasted "
        "(duplicate or corrupt blocks); 1 damaged piece repaired; 1 piece failed its hash "
        "check, 1 peer banned"
    )
    assert "; 12 pieces of the file that was there overwritten" in summary(
        "a.bin", 1, 1.0, overwritten=12
    )
    assert summary("a.bin", 10, 0.5) == "done: a.bin: 10 bytes in 0.50 s (20 B/s)"  # HTTP


def test_what_a_download_says_about_the_files_it_finds() -> None:
    from swarm.cli.fetch import existing_line, resuming_line
    from swarm.piece_io import Existing

    one = [Path("out/a.wav")]
    assert existing_line(Existing(one, 12, 256, complete_size=False)) == (
        "out/a.wav exists and 12 of 256 pieces differ: it will be overwritten; "
        "--no-overwrite to stop"
    )
    assert existing_line(Existing(one, 256, 256, complete_size=True)) == (
        "out/a.wav exists and 256 of 256 pieces differ: it will be overwritten; "
        "--no-overwrite to stop"
    )  # the right size, but nothing of it is the torrent's: not a damaged download
    assert existing_line(Existing(one, 1, 256, complete_size=True)) == (
        "out/a.wav: 1 of 256 pieces damaged; repairing"
    )
    assert existing_line(Existing(one, 0, 256, complete_size=True)) is None
    three = [Path("out/d/1"), Path("out/d/2"), Path("out/d/3")]
    assert existing_line(Existing(three, 2, 9, complete_size=False)) == (
        "out/d/1 and 2 other files exist and 2 of 9 pieces differ: they will be overwritten; "
        "--no-overwrite to stop"
    )
    assert resuming_line(161, 256) == "resuming: 161 of 256 pieces already here"
    assert resuming_line(0, 256) is None and resuming_line(256, 256) is None


def test_seed_and_fetch_listen_on_6881_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    from swarm.cli.peer import listen_port

    assert listen_port(None) == (6881, 10)  # 6881, or the next free one up to 6890
    assert listen_port(7000) == (7000, 1)  # a port the user names is that port
    assert listen_port(0) == (0, 1)
    for command in ("seed", "fetch"):
        assert main([command, "--help"]) == 0
        assert "6881, or the next free one up to 6890" in " ".join(capsys.readouterr().out.split())
    assert main(["fetch", "--help"]) == 0
    assert "--no-overwrite" in capsys.readouterr().out


def test_a_fetch_with_no_source_fails_with_one_line(
    song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No tracker and no --peer: the fetch gives up on its own (after 30 s; 0.5 s here) with
    one error line and exit 1, where it used to wait for ever."""
    import swarm.torrent

    monkeypatch.setattr(swarm.torrent, "NO_SOURCE_SECONDS", 0.5)
    torrent = tmp_path / "song.torrent"
    assert main(["create", str(song), "-o", str(torrent), "-q"]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["fetch", str(torrent), "-o", str(out), "--host", "127.0.0.1", "--port", "0"]) == 1
    captured = capsys.readouterr()
    assert_one_line_error(captured.err, "no usable tracker and no peer")
    assert not any(line.startswith("done:") for line in captured.out.splitlines())
    assert not (out / "song.bin").exists()


@pytest.mark.parametrize(
    ("tracker", "said"),
    [("notaurl", "bad tracker URL 'notaurl'"), ("http://a/x,,udp://b:1", "an empty tracker URL")],
)
def test_seed_checks_its_tracker_urls_like_create(tmp_path: Path, tracker: str, said: str) -> None:
    data = tmp_path / "d.bin"
    data.write_bytes(b"x" * 1000)
    done = run("seed", data, "-t", tracker, "--port", "0")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and said in done.stderr
    assert not (tmp_path / "d.bin.torrent").exists()


def test_the_bar_rate_shows_bytes_that_came_before_its_first_half_second() -> None:
    from swarm.cli.fetch import _Rate

    rate = _Rate(100.0, done=0)
    assert rate.update(100.1, 0) == 0.0  # nothing yet: no rate
    # 512 KiB within the first 0.2 s (a fast start on loopback): a rate at once, not 0 B/s.
    assert rate.update(100.2, 512 * 1024) == pytest.approx(512 * 1024 / 0.2)
    # Then half-second steps as before.
    assert rate.update(100.5, 1024 * 1024) == pytest.approx(1024 * 1024 / 0.5)
    assert rate.update(100.7, 2 * 1024 * 1024) == pytest.approx(1024 * 1024 / 0.5)  # held
    assert rate.update(101.0, 2 * 1024 * 1024) == pytest.approx(1024 * 1024 / 0.5)
    assert rate.update(101.5, 2 * 1024 * 1024) == 0.0  # a real stall reads 0 B/s


def test_seed_of_a_folder_uses_its_own_torrent_again(tmp_path: Path) -> None:
    """`swarm seed FOLDER` writes FOLDER.torrent, and the next `swarm seed FOLDER` uses it
    rather than calling it "made for other files" (a multi-file torrent's paths start with
    the folder's name; the folder's own do not); a changed file still says so."""
    from swarm.cli.peer import seed_torrent_file
    from swarm.errors import UsageError

    folder = tmp_path / "fold"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"x" * 100)
    (folder / "sub" / "b.bin").write_bytes(b"y" * 5000)
    target, made = seed_torrent_file(folder, None, (), False)
    assert made and target == tmp_path / "fold.torrent"
    again, made = seed_torrent_file(folder, None, (), False)
    assert again == target and not made
    (folder / "a.txt").write_bytes(b"x" * 101)
    with pytest.raises(UsageError, match="made for other files"):
        seed_torrent_file(folder, None, (), False)
