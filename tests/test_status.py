"""Status lines (swarm/status.py): the JSON lines a ``swarm`` command writes to ``--status-fd``
for ``swarm compare``. Bytes in, bytes out, and a real pipe for the writer."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm.errors import CompareError, UsageError
from swarm.status import Event, Status, StatusWriter, decode, encode


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
