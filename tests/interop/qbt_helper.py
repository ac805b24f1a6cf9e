"""qBittorrent (``qbittorrent-nox``, headless) for the interop tests, driven by its Web API v2.

Each instance runs in a profile folder of its own (``--profile``), its settings written into
``qBittorrent/config/qBittorrent.conf`` before it starts: the legal notice accepted (4.x reads
``[LegalNotice] Accepted``), the Web UI on 127.0.0.1 at a free port with no login from
localhost (``WebUI\\LocalHostAuth=false``), BitTorrent on 127.0.0.1 at a free port, and DHT,
LSD, PEX and UPnP/NAT-PMP off so that the only peers are the ones a test adds. Everything else
stays at qBittorrent's defaults: uTP and TCP both (mixed mode), encryption "allow" unless a
test asks for *encryption* 1 ("require": libtorrent's ``pe_forced`` both ways; 2 is "off").
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.procutil import Proc, free_port

ALLOW, REQUIRE, DISABLE = 0, 1, 2  # qBittorrent's Session\Encryption / preference "encryption"


def config(web_port: int, bt_port: int, encryption: int) -> str:
    """The qBittorrent.conf a test instance starts with (4.x keys). Bound by address only:
    with ``Session\\Interface=lo`` as well, 4.5.2 never dialled a peer it was given."""
    return "\n".join(
        [
            "[LegalNotice]",
            "Accepted=true",
            "",
            "[BitTorrent]",
            f"Session\\Port={bt_port}",
            "Session\\InterfaceAddress=127.0.0.1",
            "Session\\DHTEnabled=false",
            "Session\\LSDEnabled=false",
            "Session\\PeXEnabled=false",
            f"Session\\Encryption={encryption}",
            "",
            "[Network]",
            "PortForwardingEnabled=false",
            "",
            "[Preferences]",
            "Connection\\ResolvePeerCountries=false",
            "WebUI\\Address=127.0.0.1",
            f"WebUI\\Port={web_port}",
            "WebUI\\LocalHostAuth=false",
            "",
        ]
    )


class QBittorrent:
    """A running qbittorrent-nox and a small client of its Web API v2."""

    def __init__(
        self, procs: Callable[..., Proc], exe: str, profile: Path, encryption: int = ALLOW
    ) -> None:
        self.web_port = free_port()
        self.port = free_port()
        conf = profile / "qBittorrent" / "config" / "qBittorrent.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(config(self.web_port, self.port, encryption))
        self.base = f"http://127.0.0.1:{self.web_port}/api/v2/"
        self.proc = procs(exe, f"--profile={profile}", f"--webui-port={self.web_port}", raw=True)
        self._wait(self._answers, 30, "qBittorrent's Web API")
        self.version = self.get("app/version")

    def _answers(self) -> bool:
        if self.proc.popen.poll() is not None:
            raise AssertionError(
                f"qbittorrent-nox exited {self.proc.popen.returncode}: "
                + "\n".join(self.proc.err[-10:] + self.proc.out[-10:])
            )
        try:
            self.get("app/version")
        except (urllib.error.URLError, ConnectionError):
            return False
        return True

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f} s waiting for {what}; qBittorrent's log:\n"
                    + self.log_text()
                )
            time.sleep(0.1)

    def get(self, path: str, **query: object) -> Any:
        """GET an API call; its JSON, or its text when it is not JSON."""
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read().decode()
        try:
            return json.loads(body)
        except ValueError:
            return body

    def post(self, path: str, **form: object) -> str:
        """POST an API call as a form; its text (qBittorrent answers "Ok." or "Fails.")."""
        data = urllib.parse.urlencode({k: str(v) for k, v in form.items()}).encode()
        with urllib.request.urlopen(self.base + path, data=data, timeout=10) as resp:
            return resp.read().decode()

    def log_text(self, last: int = 30) -> str:
        """The last lines of qBittorrent's main log, for a failing test's message."""
        try:
            entries = self.get("log/main", last_known_id=-1)
        except (urllib.error.URLError, ConnectionError) as exc:
            return f"(no log: {exc})"
        return "\n".join(e["message"] for e in entries[-last:])

    def preferences(self) -> dict[str, Any]:
        prefs: dict[str, Any] = self.get("app/preferences")
        return prefs

    def add(self, torrent: Path, save_path: Path, seed: bool = False) -> None:
        """Add a .torrent (by its local path); *seed*: the files are there, skip the check."""
        answer = self.post(
            "torrents/add",
            urls=str(torrent),
            savepath=str(save_path),
            skip_checking="true" if seed else "false",
        )
        assert answer.strip() == "Ok.", f"torrents/add answered {answer!r}"

    def info(self, info_hash: str) -> dict[str, Any] | None:
        """The torrent's entry in torrents/info, or None while qBittorrent has not added it."""
        found = self.get("torrents/info", hashes=info_hash)
        return found[0] if found else None

    def wait_state(self, info_hash: str, states: set[str], timeout: float) -> dict[str, Any]:
        """Poll until the torrent is in one of *states* (torrents/info's ``state``)."""
        seen: dict[str, Any] = {}

        def there() -> bool:
            seen["t"] = self.info(info_hash)
            return seen["t"] is not None and seen["t"]["state"] in states

        self._wait(there, timeout, f"the torrent to be {'/'.join(sorted(states))}")
        return seen["t"]

    def add_peer(self, info_hash: str, peer: str) -> None:
        """Tell qBittorrent about a peer (``HOST:PORT``) of a torrent it has."""
        self.post("torrents/addPeers", hashes=info_hash, peers=peer)

    def peers(self, info_hash: str) -> dict[str, Any]:
        """The torrent's connected peers (sync/torrentPeers), keyed by ``ip:port``."""
        got: dict[str, Any] = self.get("sync/torrentPeers", hash=info_hash)["peers"]
        return got
