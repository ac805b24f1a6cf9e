"""``swarm compare --web`` in headless chromium: a real compare on 127.0.0.1 (small file, slow
caps, so that it lasts a few seconds), its page's bars moving, the swarm's piece map filling,
the final table and chart; and the page saying "disconnected" when compare stops mid-run
(issue 19, items 1 and 3)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from procutil import Proc, wait_for

from swarm.compare.experiment import piece_length

from .conftest import screenshot

pytestmark = pytest.mark.e2e

SWARM = 'article.phase[data-mode="swarm"]'
PROGRESS_SUM = f"""() => Array.from(document.querySelectorAll('{SWARM} progress'))
    .reduce((a, p) => a + p.value, 0)"""


def start_compare(procs: Callable[..., Proc], tmp_path: Path, *args: str) -> tuple[Proc, str]:
    """``swarm compare --web 127.0.0.1:0`` with K = N (its downloaders report progress from
    ``swarm fetch-group``); the process and its page's URL."""
    p = procs(
        *["compare", "--web", "127.0.0.1:0", "--upload-rate", "128K", "--peers", "2"],
        *["--peers-per-process", "2", *args],
        cwd=tmp_path,
    )
    found: list[str] = []

    def said() -> bool:  # the URL is on stderr (stdout is the table, or --json's object)
        found.extend(line for line in list(p.err) if line.startswith("page: "))
        return bool(found) or p.popen.poll() is not None

    wait_for(said, 30, "compare's page: line")
    assert found, p.err
    return p, found[0].split()[1]


def test_the_page_shows_the_run_as_it_goes_and_its_table_at_the_end(
    procs: Callable[..., Proc], page: Any, tmp_path: Path
) -> None:
    compare, url = start_compare(
        procs,
        tmp_path,
        *["--size", "256K", "--modes", "central,swarm", "--central-cutoff", "0.5"],
        *["--plot", str(tmp_path / "chart.png")],
    )
    page.goto(url)
    page.wait_for_function("document.getElementById('status').textContent === 'live'")
    # the swarm phase runs: its bars fill up between two reads of the page
    page.wait_for_selector(f"{SWARM}.running", timeout=30_000)
    first = page.evaluate(PROGRESS_SUM)
    assert first < 2  # two downloaders, neither done yet
    page.wait_for_function(f"({PROGRESS_SUM})() > {first}", timeout=15_000)
    page.wait_for_function(
        f"document.querySelector('{SWARM} canvas.pieces').getAttribute('data-cells') > 0"
    )
    page.wait_for_selector("#final-table tbody tr", timeout=30_000)
    assert compare.wait_exit(timeout=30) == 0
    rows = page.locator("#final-table tbody tr")
    assert rows.count() == 2  # N = 2: central and swarm
    assert rows.nth(1).locator("td").nth(1).text_content() == "swarm"
    assert page.locator('article.phase[data-mode="central"]').count() == 1  # side by side
    assert page.locator(f"{SWARM} .fin").all_text_contents()[0].startswith("done ")
    cells = int(page.get_attribute(f"{SWARM} canvas.pieces", "data-cells"))
    # every piece of both downloaders (in a fetch-group process: compare's piece length)
    assert cells == 2 * (256 * 1024 // piece_length(256 * 1024, 2, 2 * 128 * 1024))
    # the chart and the JSON were fetched before compare exited, and stay
    page.wait_for_function("document.getElementById('chart').naturalWidth > 0")
    assert page.get_attribute("#json-link", "href").startswith("blob:")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('finished')")
    screenshot(page, tmp_path / "compare-page.png")
    assert page.errors == []


def test_the_page_says_disconnected_when_compare_stops_mid_run(
    procs: Callable[..., Proc], page: Any, tmp_path: Path
) -> None:
    compare, url = start_compare(procs, tmp_path, "--size", "1M", "--modes", "swarm", "--no-plot")
    page.goto(url)
    page.wait_for_selector(f"{SWARM}.running", timeout=30_000)
    compare.stop(signal.SIGTERM)  # its server closes the stream with no word of an end
    page.wait_for_function(
        "document.getElementById('status').textContent.startsWith('disconnected')"
    )
    assert page.locator("#final").is_hidden()
    screenshot(page, tmp_path / "compare-disconnected.png")
    assert page.errors == []
