"""``swarm compare --web``: the page's data model (swarm/compare/web/model.py, pure, a fake
clock) and its server (swarm/compare/web/server.py) on a real 127.0.0.1 socket."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from swarm.compare.web.model import PEER, SEED, WEB, Cursor, LiveRun, table_data
from swarm.compare.web.server import CSP, WebPage, parse_address
from swarm.errors import UsageError
from swarm.status import Event, Progress, Status

A, B, SEEDER = "aa" * 20, "bb" * 20, "ee" * 20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def line(*parts: Progress) -> Status:
    return Status(Event.PROGRESS, progress=parts)


def swarm_run(mode: str = "swarm") -> tuple[LiveRun, Any, Clock]:
    clock = Clock()
    live = LiveRun({"file": "x.bin"}, clock)
    phase = live.phase(mode, 2, 4 * 32768, 4, 3.0, {"server": 1000, "total": 3000})
    return live, phase, clock


def test_a_piece_from_a_downloader_is_a_peer_s_any_other_the_seed_s() -> None:
    live, phase, clock = swarm_run()
    live.go(phase)
    phase.progress(line(Progress(0, A, ((SEEDER, (0, 1)),))), first=0)
    # B's piece from A before B's own first line, and A's from B named later: classes are
    # taken when the page is told, so both are peers'
    phase.progress(line(Progress(1, None, ((A, (0,)), ("web", (3,))))), first=0)
    phase.progress(line(Progress(0, A, ((B, (2,)),))), first=0)
    phase.progress(line(Progress(1, B)), first=0)
    tick = [m for m in live.messages(Cursor()) if m["type"] == "tick"][0]
    assert tick["pieces"] == [[0, 0, SEED], [0, 1, SEED], [1, 0, PEER], [1, 3, WEB], [0, 2, PEER]]
    assert [d[0] for d in tick["downloaders"]] == [0.75, 0.5]


def test_hybrid_has_no_seed_so_an_unknown_sender_is_a_peer() -> None:
    live, phase, _ = swarm_run("hybrid")
    live.go(phase)
    phase.progress(line(Progress(0, A, ((SEEDER, (0,)),))), first=0)
    assert live.messages(Cursor())[-1]["pieces"] == [[0, 0, PEER]]


def test_a_process_of_one_downloader_is_named_by_its_first_and_strangers_are_ignored() -> None:
    live, phase, _ = swarm_run()
    phase.progress(line(Progress(None, A, ((SEEDER, (3,)),))), first=1)  # swarm fetch, no index
    phase.progress(line(Progress(7, A, ((SEEDER, (0,)),))), first=0)  # no downloader 7
    phase.progress(line(Progress(0, A, ((SEEDER, (99,)),))), first=0)  # no piece 99
    assert phase.pieces == [(1, 3, SEEDER)]
    assert phase.ignored == 1


def test_rates_over_time_split_the_server_s_upload_from_the_peers() -> None:
    live, phase, clock = swarm_run()
    live.go(phase)
    live.sample()
    clock.now += 1.0
    # A got 3000 bytes and uploaded 1000 to B; B got 1000 (A's): 3000 from the seed
    phase.progress(line(Progress(0, A, (), 3000, 1000), Progress(1, B, (), 1000, 0)), first=0)
    live.sample()
    t, down, server, peers = phase.series[-1]
    assert (t, down, server, peers) == (1.0, 4000.0, 3000.0, 1000.0)
    assert phase.rates == [3000.0, 1000.0]


def test_a_new_session_s_counters_add_to_the_old_ones_churn() -> None:
    live, phase, clock = swarm_run()
    phase.progress(line(Progress(0, A, (), 5000, 100)), first=0)
    phase.progress(line(Progress(0, "cc" * 20, (), 700, 0)), first=0)  # back: counting anew
    d = phase.downloaders[0]
    assert (d.downloaded, d.uploaded) == (5700, 100)
    assert phase.ids == {A: 0, "cc" * 20: 0}


def test_the_central_mode_s_progress_is_its_bytes_done() -> None:
    clock = Clock()
    live = LiveRun({}, clock)
    phase = live.phase("central", 2, 1000, 0, 2.0, {"server": 1000, "total": 1000})
    live.go(phase)
    phase.progress(line(Progress(0, downloaded=250, total=1000)), first=0)
    phase.done(1, 1.234567)
    tick = live.messages(Cursor())[-1]
    assert tick["downloaders"] == [[0.25, 0, None], [1.0, 0, 1.23]]
    assert tick["pieces"] == []


def test_a_page_is_told_each_thing_once() -> None:
    live, phase, clock = swarm_run()
    cursor = Cursor()
    first = live.messages(cursor)
    assert [m["type"] for m in first] == ["run", "phase", "tick"]
    assert first[1] | {"caps": None} == {
        "type": "phase",
        "id": 0,
        "mode": "swarm",
        "n": 2,
        "size": 4 * 32768,
        "num_pieces": 4,
        "bound": 3.0,
        "caps": None,
    }
    assert live.messages(cursor) == []  # nothing changed
    live.go(phase)
    phase.progress(line(Progress(0, A, ((SEEDER, (2,)),))), first=0)
    clock.now += 0.5
    live.sample()
    (tick,) = live.messages(cursor)
    assert tick["state"] == "running" and tick["t"] == 0.5
    assert tick["pieces"] == [[0, 2, SEED]] and len(tick["series"]) == 1
    phase.progress(line(Progress(1, B, ((A, (2,)),))), first=0)
    (tick,) = live.messages(cursor)
    assert tick["pieces"] == [[1, 2, PEER]] and tick["series"] == []  # only what is new
    live.end(phase)
    live.finish({"title": "t", "rows": []})
    out = live.messages(cursor)
    assert [m["type"] for m in out] == ["tick", "final"]
    assert out[0]["state"] == "done"
    assert live.messages(cursor) == []
    assert len(live.messages(Cursor())[-2]["pieces"]) == 2  # a new page: everything


def test_the_final_table_is_the_terminal_s() -> None:
    from rich.table import Table

    t = Table(title="x.bin")
    for col in ("N", "mode", "max"):
        t.add_column(col)
    t.add_row("2", "central", "<b>6.00</b>")
    t.add_row("2", "swarm", "3.45")
    data = table_data("x.bin", t.columns, "times", ["F = 1"])
    assert data == {
        "title": "x.bin",
        "columns": ["N", "mode", "max"],
        "rows": [["2", "central", "<b>6.00</b>"], ["2", "swarm", "3.45"]],
        "caption": "times",
        "lines": ["F = 1"],
    }


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("8080", ("127.0.0.1", 8080)),
        ("0", ("127.0.0.1", 0)),
        ("127.0.0.2:9", ("127.0.0.2", 9)),
        ("[::1]:9", ("::1", 9)),
        (":9", ("127.0.0.1", 9)),
    ],
)
def test_web_takes_host_and_port(text: str, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "x", "127.0.0.1:", "1:2:x", "65536", "-1"])
def test_a_bad_web_address_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--web takes"):
        parse_address(text)


async def _events(resp: aiohttp.ClientResponse, until: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        async for raw in resp.content:
            text = raw.decode().strip()
            if text.startswith("data: "):
                out.append(json.loads(text[6:]))
                if out[-1]["type"] == until:
                    return out
    return out


def test_the_server_serves_the_page_the_stream_and_the_end(tmp_path: Path) -> None:
    async def main() -> None:
        live, phase, _ = swarm_run()
        page = WebPage(live, "127.0.0.1", 0)
        url = await page.start()
        try:
            assert url.startswith("http://127.0.0.1:")
            async with aiohttp.ClientSession() as http:
                async with http.get(url) as r:
                    assert r.status == 200 and r.headers["Content-Security-Policy"] == CSP
                    assert '<script src="/compare.js">' in await r.text()
                async with http.get(url + "compare.js") as r:
                    assert "textContent" in await r.text()
                    assert r.content_type == "text/javascript"
                async with http.get(url + "result.json") as r:
                    assert r.status == 404  # not before the end
                async with http.get(url + "events") as events:
                    assert events.content_type == "text/event-stream"
                    got = await _events(events, "tick")
                    assert [m["type"] for m in got] == ["run", "phase", "tick"]
                    chart = tmp_path / "chart.png"
                    chart.write_bytes(b"\x89PNG")
                    page.finish({"title": "t"}, chart, {"runs": []})
                    got = await _events(events, "final")
                    assert got[-1]["chart"] and got[-1]["json"]
                    async with http.get(url + "chart.png") as r:
                        assert await r.read() == b"\x89PNG"
                    async with http.get(url + "result.json") as r:
                        assert await r.json() == {"runs": []}
                    async with asyncio.timeout(2):
                        await page.linger()  # both fetched by the one open page: at once
                    await page.close(ended=True)
                    assert (await _events(events, "end"))[-1] == {"type": "end"}
        finally:
            await page.close(ended=False)

    asyncio.run(main())


def test_stopped_mid_run_the_stream_closes_with_no_end(tmp_path: Path) -> None:
    async def main() -> None:
        live, _, _ = swarm_run()
        page = WebPage(live, "127.0.0.1", 0)
        url = await page.start()
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "events") as events:
                await _events(events, "tick")
                await page.close(ended=False)
                rest = await _events(events, "end")
                assert all(m["type"] != "end" for m in rest)

    asyncio.run(main())


def test_a_port_in_use_is_a_one_line_error() -> None:
    async def main() -> None:
        first = WebPage(LiveRun({}), "127.0.0.1", 0)
        url = await first.start()
        port = int(url.rsplit(":", 1)[1].strip("/"))
        try:
            with pytest.raises(UsageError, match=f"--web 127.0.0.1:{port}: "):
                await WebPage(LiveRun({}), "127.0.0.1", port).start()
        finally:
            await first.close(ended=False)

    asyncio.run(main())


class _Transport:
    def close(self) -> None:
        pass


def test_a_child_s_progress_lines_go_to_the_page_and_a_failure_there_is_not_the_run_s() -> None:
    from swarm.compare.children import Child
    from swarm.status import encode

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "", stderr=asyncio.subprocess.PIPE
        )
        reader = asyncio.StreamReader()
        child = Child("downloaders 0-1", proc, reader, _Transport())  # type: ignore[arg-type]
        got: list[Status] = []

        def take(status: Status) -> None:
            got.append(status)
            raise ValueError("a bug of the page's")

        child.on_progress = take
        reader.feed_data(encode(line(Progress(0, A))) + encode(Status(Event.READY)))
        reader.feed_data(b'{"event":"progress","downloaders":[{"index":"bad"}]}\n')
        reader.feed_data(encode(Status(Event.DONE, index=0)))
        reader.feed_eof()
        assert (await child.wait_for(Event.DONE, 5, 0)).index == 0
        assert child.statuses == [Status(Event.READY), Status(Event.DONE, index=0)]
        assert got == [line(Progress(0, A)), line(Progress())]
        await child.stop()

    asyncio.run(main())
