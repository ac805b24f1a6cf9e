"""``swarm compare --web``: the run as a live page in a browser (:mod:`.server`, aiohttp in
compare's own process) from the children's progress lines (:mod:`swarm.status`) through a pure
model (:mod:`.model`); the page itself is three files of the package (``static/``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarm.compare.churn import Churn
    from swarm.compare.results import Run
    from swarm.compare.settings import Experiment
    from swarm.compare.web.server import WebPage


async def open_page(address: str, exp: Experiment, info: dict[str, Any]) -> WebPage:
    """Serve the page of *exp* at ``[HOST:]PORT`` (*address*); the experiment then feeds it."""
    from swarm.compare.web.model import LiveRun
    from swarm.compare.web.server import WebPage, parse_address

    host, port = parse_address(address)
    exp.live = LiveRun(info)
    page = WebPage(exp.live, host, port)
    await page.start()
    return page


async def show_end(
    page: WebPage,
    runs: list[Run],
    info: dict[str, Any],
    churn: Churn | None,
    chart: Path | None,
    result: Any,
) -> None:
    """Tell the page the run's table (the terminal's), chart and JSON, and give open pages
    a moment to fetch them."""
    from swarm.compare.report import table
    from swarm.compare.web.model import table_data

    t, lines = table(
        runs, info["file"], info["size"], info["upload_rate"], info["peer_upload_rate"],
        info["download_rate"], churn,
    )  # fmt: skip
    page.finish(table_data(str(t.title), t.columns, str(t.caption), lines), chart, result)
    await page.linger()


__all__ = ["open_page", "show_end"]
