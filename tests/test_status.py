"""Status lines (swarm/status.py): the JSON lines a ``swarm`` command writes to ``--status-fd``
for ``swarm compare``. Bytes in, bytes out, and a real pipe for the writer."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm.errors import CompareError, UsageError
from swarm.status import (
    MAX_LINE,
    PROGRESS_ENV,
    Event,
    Progress,
    ProgressReporter,
    Status,
    StatusWriter,
    decode,
    encode,
    progress_period,
    watch_progress,
)


def test_lines_as_documented() -> None:
    assert encode(Status(Event.READY)) == b'{"event":"ready"}\n'
    line = encode(Status(Event.LISTENING, port=6969, urls=("http://127.0.0.1:6969/announce",)))
    assert line == b'{"event":"listening","port":6969,"urls":["http://127.0.0.1:6969/announce"]}\n'
    line = encode(Status(Event.DONE, name="x.bin", downloaded=1048576, seconds=1.234))
    assert json.loads(line) == {
        "event": "done",
        "name": "x.bin",
        "downloaded": 1048576,
        "seconds": 1.234,
    }
    line = encode(Status(Event.ERROR, message="port 1 is already in use", exit_code=1))
    assert json.loads(line) == {
        "event": "error",
        "message": "port 1 is already in use",
        "exit_code": 1,
    }


def test_a_group_member_s_done_line_carries_its_index_and_one_without_reads_as_before() -> None:
    line = encode(Status(Event.DONE, name="x.bin", downloaded=5, seconds=1.5, index=7))
    assert json.loads(line) == {
        "event": "done",
        "name": "x.bin",
        "downloaded": 5,
        "seconds": 1.5,
        "index": 7,
    }
    assert decode(line).index == 7
    assert b"index" not in encode(Status(Event.DONE, name="x.bin", downloaded=5, seconds=1.5))
    assert decode(b'{"event":"done","name":"x.bin"}\n').index is None


def test_decode_reads_what_encode_writes_and_ignores_unknown_keys() -> None:
    status = Status(Event.DONE, name="é.bin", downloaded=5, seconds=2)
    assert decode(encode(status)) == Status(Event.DONE, name="é.bin", downloaded=5, seconds=2.0)
    assert decode(b'{"event":"ready","later":"field"}\n') == Status(Event.READY)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"seeding on port 6881; Ctrl-C to stop\n", "not a status line"),
        (b"\xff\xfe\n", "not a status line"),
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"port": 1}\n', "unknown event"),
        (b'{"event": "listening!"}\n', "unknown event"),
        (b'{"event": "listening", "port": "6881"}\n', "port must be an integer"),
        (b'{"event": "listening", "port": true}\n', "port must be an integer"),
        (b'{"event": "listening", "urls": "http://a/"}\n', "urls must be a list"),
        (b'{"event": "done", "seconds": "1"}\n', "seconds must be a number"),
        (b'{"event": "error", "message": 1}\n', "message must be a string"),
        (b'{"event": "done", "index": "3"}\n', "index must be an integer"),
    ],
)
def test_a_line_that_is_not_a_status_line_is_a_compare_error(line: bytes, words: str) -> None:
    with pytest.raises(CompareError, match=words):
        decode(line)


statuses = st.builds(
    Status,
    event=st.sampled_from(Event),
    port=st.none() | st.integers(0, 65535),
    urls=st.lists(st.text(), max_size=3).map(tuple),
    name=st.none() | st.text(),
    downloaded=st.none() | st.integers(0, 2**63),
    seconds=st.none() | st.floats(0, 1e6),
    message=st.none() | st.text(),
    exit_code=st.none() | st.integers(0, 255),
    index=st.none() | st.integers(0, 10_000),
)


@given(statuses)
def test_round_trip(status: Status) -> None:
    line = encode(status)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one line, whatever the text
    assert decode(line) == status


@given(st.binary(max_size=200))
def test_decode_fails_only_with_compare_error(data: bytes) -> None:
    try:
        decode(data)
    except CompareError:
        pass


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def test_writer_writes_whole_lines_to_its_fd(pipe: tuple[int, int]) -> None:
    r, w = pipe
    writer = StatusWriter(w)
    writer.send(Status(Event.LISTENING, port=1))
    writer.send(Status(Event.READY))
    data = os.read(r, 4096)
    assert [decode(line) for line in data.splitlines(keepends=True)] == [
        Status(Event.LISTENING, port=1),
        Status(Event.READY),
    ]
    assert not os.get_inheritable(w)  # not handed on to processes the command starts


def test_writer_stops_quietly_when_the_reader_is_gone(pipe: tuple[int, int]) -> None:
    r, w = pipe
    os.close(r)
    writer = StatusWriter(w)
    writer.send(Status(Event.READY))  # EPIPE: the command carries on without a reader
    writer.send(Status(Event.READY))
    assert writer.fd is None


def test_writer_refuses_a_descriptor_that_is_not_open() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(UsageError, match=f"--status-fd {w}"):
        StatusWriter(w)


# -- progress lines (swarm compare --web) ---------------------------------------------------


def test_a_progress_line_round_trips_with_its_pieces_by_source() -> None:
    status = Status(
        Event.PROGRESS,
        progress=(
            Progress(3, "2d53", (("2d53aa", (4, 9)), ("web", (12,))), 65536, 16384, 0),
            Progress(4, total=1000, downloaded=10),
        ),
    )
    line = encode(status)
    assert json.loads(line) == {
        "event": "progress",
        "downloaders": [
            {
                "index": 3,
                "peer_id": "2d53",
                "pieces": {"2d53aa": [4, 9], "web": [12]},
                "downloaded": 65536,
                "uploaded": 16384,
                "web_seed_downloaded": 0,
            },
            {"index": 4, "downloaded": 10, "total": 1000},
        ],
    }
    assert decode(line) == status


def test_a_bad_part_of_a_progress_line_is_dropped_never_an_error() -> None:
    line = (
        b'{"event":"progress","downloaders":[7,{"index":"x","downloaded":-1,"peer_id":5,'
        b'"pieces":{"a":[1,"2",-3,4],"b":"no","c":[]}},{"index":2}]}\n'
    )
    assert decode(line).progress == (Progress(pieces=(("a", (1, 4)),)), Progress(index=2))
    assert decode(b'{"event":"progress","downloaders":{"a":1}}').progress == ()
    assert decode(b'{"event":"progress"}') == Status(Event.PROGRESS)


@given(
    st.recursive(
        st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_any_json_in_a_progress_line_reads_without_an_error(value: object) -> None:
    line = json.dumps({"event": "progress", "downloaders": value}).encode()
    assert decode(line).event is Event.PROGRESS


def test_progress_is_sent_only_when_the_run_is_watched() -> None:
    assert progress_period({}) is None
    assert progress_period({PROGRESS_ENV: ""}) is None
    assert progress_period({PROGRESS_ENV: "soon"}) is None
    assert progress_period({PROGRESS_ENV: "nan"}) is None
    assert progress_period({PROGRESS_ENV: "0.25"}) == 0.25
    assert progress_period({PROGRESS_ENV: "0"}) == 0.05  # never a busy loop


class _Controller:
    """What the reporter reads of a TorrentController, and its PieceIO's ``on_verified``."""

    def __init__(self, peer_id: bytes, num_pieces: int) -> None:
        self.host = type("Host", (), {"peer_id": peer_id})()
        self.num_pieces = num_pieces
        self.picker = type("Picker", (), {"num_have": 0})()
        self.downloaded = self.uploaded = 0
        self.web_seeds = type("WebSeeds", (), {"downloaded": 0})()
        listeners: list[Callable[[int, set[bytes]], None]] = []
        self.io = type("IO", (), {"on_verified": listeners})()

    async def piece(self, index: int, *senders: bytes) -> None:
        if index >= 0:  # else it failed its hash check
            for note in self.io.on_verified:
                note(index, set(senders))
            self.picker.num_have += 1


def test_the_reporter_batches_each_downloader_s_pieces_by_their_sender() -> None:
    async def main() -> list[Status]:
        sent: list[Status] = []
        reporter = ProgressReporter(sent.append, period=60)
        a, b = _Controller(b"A" * 20, 10), _Controller(b"B" * 20, 10)
        reporter.torrent(a, 0)
        reporter.torrent(b, 1)
        await a.piece(0, b"S" * 20)
        await a.piece(1, b"B" * 20)
        await a.piece(2, b"S" * 20)
        await a.piece(-1, b"S" * 20)  # failed its hash check: not reported
        await b.piece(5, b"web seed http://x/")
        a.downloaded, b.downloaded, b.web_seeds.downloaded = 3 * 16384, 16384, 16384
        reporter.report()
        reporter.report()  # nothing moved since: no line
        a.uploaded = 100
        reporter.report()
        return sent

    sent = asyncio.run(main())
    assert len(sent) == 2
    first, second = sent[0].progress, sent[1].progress
    s, b = (b"S" * 20).hex(), (b"B" * 20).hex()
    assert first == (
        Progress(0, (b"A" * 20).hex(), ((s, (0, 2)), (b, (1,))), 3 * 16384, 0, 0),
        Progress(1, b, (("web", (5,)),), 16384, 0, 16384),
    )
    assert second == (Progress(0, (b"A" * 20).hex(), (), 3 * 16384, 100, 0),)


def test_the_last_piece_s_line_goes_at_once_before_the_done_line() -> None:
    async def main() -> list[Status]:
        sent: list[Status] = []
        reporter = ProgressReporter(sent.append, period=60)
        t = _Controller(b"A" * 20, 2)
        reporter.torrent(t)
        await t.piece(0, b"S" * 20)
        await asyncio.sleep(0)
        assert sent == []  # batched
        await t.piece(1, b"S" * 20)
        await asyncio.sleep(0)  # the line is sent on the loop's next turn
        return sent

    sent = asyncio.run(main())
    assert [p.pieces for p in sent[0].progress] == [(((b"S" * 20).hex(), (0, 1)),)]


def test_a_long_report_is_split_into_lines_a_reader_takes() -> None:
    sent: list[Status] = []
    reporter = ProgressReporter(sent.append)
    for i in range(60):
        reporter.http(i)(i * 1000, 10**6)
        reporter._entries[i].pieces = {
            f"{j:040x}": list(range(j * 40, j * 40 + 40)) for j in range(5)
        }
    big = ProgressReporter(sent.append)
    big._entry(0).pieces = {"web": list(range(10_000))}
    big.report()
    reporter.report()
    assert len(sent) > 2
    for line in sent:
        assert len(encode(line)) < MAX_LINE
    assert (
        sum(len(got) for s in sent for p in s.progress for _, got in p.pieces) == 10_000 + 60 * 200
    )
    assert {p.index for s in sent[-3:] for p in s.progress} >= {59}


def test_watch_progress_does_nothing_unless_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> tuple[object, list[Status]]:
        sent: list[Status] = []
        async with watch_progress(sent.append, _Controller(b"A" * 20, 5)) as reporter:
            pass
        return reporter, sent

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert asyncio.run(main()) == (None, [])
    monkeypatch.setenv(PROGRESS_ENV, "0.05")

    async def watched() -> list[Status]:
        sent: list[Status] = []
        t = _Controller(b"A" * 20, 5)
        async with watch_progress(sent.append, t, index=4):
            await t.piece(0, b"S" * 20)
            async with asyncio.timeout(5):
                while not sent:  # the period's line
                    await asyncio.sleep(0.01)
        return sent

    sent = asyncio.run(watched())
    assert sent[0].progress[0].index == 4
    assert sent[0].progress[0].pieces == (((b"S" * 20).hex(), (0,)),)
