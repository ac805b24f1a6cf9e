"""BEP 5's ``nodes`` of a trackerless torrent (swarm.dht_nodes, Torrent.nodes, ``swarm create
--dht-node``) and the ``HOST:PORT`` a user gives for a DHT node."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm import bencoding, metainfo
from swarm.cli import main
from swarm.create import create_torrent
from swarm.dht_nodes import parse_node_address, parse_nodes
from swarm.errors import UsageError


def test_nodes_are_written_beside_the_info_and_leave_the_info_hash_alone(tmp_path: Path) -> None:
    data = tmp_path / "a.bin"
    data.write_bytes(b"x" * 40000)
    plain = metainfo.parse(create_torrent(data))
    raw = create_torrent(data, dht_nodes=[("127.0.0.1", 6881), ("router.example", 6882)])
    with_nodes = metainfo.parse(raw)
    assert with_nodes.info_hash == plain.info_hash
    assert with_nodes.nodes == (("127.0.0.1", 6881), ("router.example", 6882))
    assert bencoding.decode(raw)[b"nodes"] == [[b"127.0.0.1", 6881], [b"router.example", 6882]]
    assert plain.nodes == ()
    assert metainfo.parse(with_nodes.to_bytes()).nodes == with_nodes.nodes


def test_entries_of_the_wrong_shape_are_skipped() -> None:
    value = [[b"10.0.0.1", 1], [b"", 2], [b"h", 0], [b"h", 70000], b"x", [b"h"], [b"h", True]]
    assert parse_nodes(value) == (("10.0.0.1", 1),)
    assert parse_nodes(b"not a list") == ()


@pytest.mark.parametrize("text", ["host", "host:", ":80", "host:0", "host:x", "[::1]:80"])
def test_a_bad_node_address_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_node_address(text)


def test_create_with_dht_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "a.bin"
    data.write_bytes(b"y" * 1000)
    out = tmp_path / "a.torrent"
    args = ["create", str(data), "-o", str(out), "--dht-node", "127.0.0.1:7000"]
    assert main(args) == 0
    t = metainfo.load(out)
    assert t.nodes == (("127.0.0.1", 7000),) and t.trackers == []
    assert main(["info", str(out)]) == 0
    assert "dht node:     127.0.0.1:7000" in capsys.readouterr().out
    assert main(["create", str(data), "-o", str(tmp_path / "b.torrent"), "--dht-node", "x"]) == 2


# -- when seed and fetch run the DHT, and through which nodes (swarm.cli.dht) -------------------

ROUTERS = [
    ("router.bittorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("router.utorrent.com", 6881),
]


def test_the_default_for_a_user_is_the_public_routers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from swarm.cli.dht import dht_session_options

    monkeypatch.delenv("SWARM_NO_PUBLIC_DHT", raising=False)
    kw = dht_session_options((None, (), None), "0.0.0.0", tmp_path)
    assert kw == {
        "dht": True,
        "dht_port": None,
        "dht_bootstrap": ROUTERS,
        "dht_state": tmp_path / ".swarm-dht.state",
    }
    assert dht_session_options((False, (), None), "0.0.0.0", tmp_path) == {"dht": False}
    # a loopback peer port could not reach them: not dialled, so no DHT unless asked for
    assert dht_session_options((None, (), None), "127.0.0.1", tmp_path) == {"dht": False}
    assert dht_session_options((None, (), None), "localhost", tmp_path) == {"dht": False}


def test_the_test_suite_never_gets_the_public_routers(tmp_path: Path) -> None:
    from swarm.cli.dht import dht_session_options

    assert dht_session_options((None, (), None), "0.0.0.0", tmp_path) == {"dht": False}
    on = dht_session_options((True, (), 7000), "0.0.0.0", tmp_path)
    assert on["dht"] is True and on["dht_bootstrap"] == [] and on["dht_port"] == 7000
    given = dht_session_options((None, ("127.0.0.1:9",), None), "127.0.0.1", tmp_path)
    assert given["dht"] is True and given["dht_bootstrap"] == [("127.0.0.1", 9)]
    nodes = dht_session_options((None, (), None), "0.0.0.0", tmp_path, [("127.0.0.1", 9)])
    assert nodes["dht"] is True and nodes["dht_bootstrap"] == []
    with pytest.raises(UsageError):
        dht_session_options((None, ("nope",), None), "0.0.0.0", tmp_path)
