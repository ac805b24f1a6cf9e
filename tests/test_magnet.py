"""Magnet URIs (BEP 9): parse, build, every refusal, and ``swarm info MAGNET``."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm import bencoding, metainfo
from swarm.cli import main
from swarm.errors import MagnetError, SwarmError
from swarm.magnet import Magnet, parse_magnet, parse_peer

HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
HEX = HASH.hex()
B32 = base64.b32encode(HASH).decode()  # 32 letters, no padding

# The shapes the clients' documentation shows: libtorrent and qBittorrent (hex, '+' for a
# space, several tr), Transmission (base32, UTF-8 dn), and x.pe with an IPv6 peer.
REAL = (
    f"magnet:?xt=urn:btih:{HEX.upper()}&dn=Big+Buck+Bunny"
    "&tr=udp%3A%2F%2Fexplodie.org%3A6969&tr=udp%3A%2F%2Ftracker.coppersurfer.tk%3A6969"
    "&tr=udp%3A%2F%2Fexplodie.org%3A6969"  # a repeat: named once
    "&tr=wss%3A%2F%2Ftracker.btorrent.xyz&ws=https%3A%2F%2Fwebtorrent.io%2Ftorrents%2F"
    "&x.pe=%5B2001%3Adb8%3A%3A1%5D%3A6881&x.pe=10.0.0.2:51413&x.pe=peer.example.org:6881"
    "&so=0,2,4-6&xl=276445467"
)


# -- parsing -------------------------------------------------------------------------------


def test_a_real_world_magnet() -> None:
    m = parse_magnet(REAL)
    assert m.info_hash == HASH and m.info_hash_hex == HEX
    assert m.display_name == "Big Buck Bunny"
    assert m.trackers == [
        "udp://explodie.org:6969",
        "udp://tracker.coppersurfer.tk:6969",
        "wss://tracker.btorrent.xyz",
    ]
    assert m.web_seeds == ["https://webtorrent.io/torrents/"]
    assert m.peers == [("2001:db8::1", 6881), ("10.0.0.2", 51413), ("peer.example.org", 6881)]
    assert m.extra == [("so", "0,2,4-6"), ("xl", "276445467")]  # so is kept raw, untouched


def test_transmission_style_base32_and_utf8_name() -> None:
    name = "Ünïcödé — 日本語 & more.mkv"
    uri = f"magnet:?xt=urn:btih:{B32.lower()}&dn={urllib.parse.quote(name)}&tr=http://t/a"
    m = parse_magnet(uri)
    assert m.info_hash == HASH and m.display_name == name and m.trackers == ["http://t/a"]


@pytest.mark.parametrize("topic", [HEX, HEX.upper(), B32, B32.lower()])
def test_hex_and_base32_name_the_same_info_hash(topic: str) -> None:
    assert parse_magnet(f"magnet:?xt=urn:btih:{topic}").info_hash == HASH


def test_the_same_hash_twice_and_other_topics_beside_it_are_fine() -> None:
    sha1 = "urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C"
    uri = f"MAGNET:?XT=urn:BTIH:{B32}&xt.1=urn:btih:{HEX}&xt.2={sha1}&Tr.1=http://t/a&DN=x"
    m = parse_magnet(uri)
    assert (m.info_hash, m.display_name, m.trackers) == (HASH, "x", ["http://t/a"])
    assert m.extra == [("xt.2", sha1)]


def test_a_hybrid_magnet_uses_its_v1_hash() -> None:
    m = parse_magnet(f"magnet:?xt=urn:btmh:1220{'ab' * 32}&xt=urn:btih:{HEX}")
    assert m.info_hash == HASH and m.extra == [("xt", f"urn:btmh:1220{'ab' * 32}")]


def test_empty_values_name_nothing() -> None:
    m = parse_magnet(f" magnet:?xt=urn:btih:{HEX}&dn=&tr=&ws=&dn=second \n")
    assert m == Magnet(HASH, "second")


@pytest.mark.parametrize(
    ("value", "peer"),
    [
        ("1.2.3.4:6881", ("1.2.3.4", 6881)),
        ("[2001:DB8:0:0::1]:1", ("2001:db8::1", 1)),
        ("[::ffff:1.2.3.4]:65535", ("::ffff:102:304", 65535)),
        ("Host-1.example.:80", ("Host-1.example.", 80)),
        ("localhost:6881", ("localhost", 6881)),
        ("1.2.3.4", None),
        ("1.2.3.4:", None),
        ("1.2.3.4:0", None),
        ("1.2.3.4:65536", None),
        ("1.2.3.4:99999999999999999999", None),
        ("1.2.3.4:-1", None),
        ("1.2.3.4:٣", None),  # a digit, but not an ASCII one
        ("256.1.1.1:80", None),
        ("01.2.3.4:80", None),
        ("2001:db8::1:80", None),  # IPv6 without brackets
        ("[1.2.3.4]:80", None),
        ("[nonsense]:80", None),
        ("bad host:80", None),
        ("-bad.example:80", None),
        ("a..b:80", None),
        (":80", None),
        ("", None),
    ],
)
def test_x_pe_peers(value: str, peer: tuple[str, int] | None) -> None:
    assert parse_peer(value) == peer
    m = parse_magnet(f"magnet:?xt=urn:btih:{HEX}&x.pe={urllib.parse.quote(value)}")
    assert m.peers == ([peer] if peer else [])  # a malformed peer is skipped, as libtorrent does


# -- refusals: one line each, a MagnetError, exit code 2 -----------------------------------

BAD = [
    ("http://example.com/x.torrent", "not a magnet URI (it should start with magnet:?): "),
    ("magnet:xt=urn:btih:" + HEX, "not a magnet URI (it should start with magnet:?): "),
    ("magnet:?dn=x&tr=http://t/a", "the magnet has no xt (exact topic): it names no torrent"),
    ("magnet:?", "the magnet has no xt (exact topic): it names no torrent"),
    (
        f"magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{'00' * 20}",
        f"the magnet names several different info-hashes: {HEX}, {'00' * 20}",
    ),
    (
        f"magnet:?xt=urn:btmh:1220{'ab' * 32}",
        "v2 magnets (xt=urn:btmh:, a multihash) are not supported",
    ),
    (
        "magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C",
        "unknown xt 'urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C': "
        "swarm needs xt=urn:btih:<info-hash>",
    ),
    (
        "magnet:?xt=urn:btih:abcd",
        "info-hash 'abcd' has 4 characters: it should be 40 hex or 32 base32",
    ),
    (
        f"magnet:?xt=urn:btih:{HEX}00",
        f"info-hash '{HEX}00' has 42 characters: it should be 40 hex or 32 base32",
    ),
    ("magnet:?xt=urn:btih:" + "g" * 40, f"info-hash '{'g' * 40}' is not hex"),
    ("magnet:?xt=urn:btih:" + "1" * 32, f"info-hash '{'1' * 32}' is not base32"),
    ("magnet:?xt=urn:btih:" + "A" * 24 + "=" * 8, f"info-hash '{'A' * 24}{'=' * 8}' is not base32"),
    ("magnet:?xt=urn:btih:" + "é" * 32, f"info-hash '{'é' * 32}' is not base32"),
    (
        "magnet:?xt=urn:btih:" + "%0A" * 40,
        "info-hash '" + "\\n" * 40 + "' is not hex",  # a newline stays on the one line
    ),
]


@pytest.mark.parametrize(("uri", "message"), BAD)
def test_refusals(uri: str, message: str) -> None:
    with pytest.raises(MagnetError) as err:
        parse_magnet(uri)
    assert isinstance(err.value, SwarmError) and err.value.exit_code == 2
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_long_value_is_cut_in_the_message() -> None:
    with pytest.raises(MagnetError) as err:
        parse_magnet("magnet:?xt=urn:btih:" + "f" * 500)
    assert str(err.value) == (
        f"info-hash '{'f' * 60}...' has 500 characters: it should be 40 hex or 32 base32"
    )


def test_a_magnet_is_built_from_valid_parts_only() -> None:
    with pytest.raises(MagnetError, match="^an info-hash is 20 bytes, not 19$"):
        Magnet(HASH[:19])
    with pytest.raises(MagnetError, match=r"^peer h has port 0, out of range \(1-65535\)$"):
        Magnet(HASH, peers=[("h", 0)])
    with pytest.raises(MagnetError, match=r"^peer h has port 65536, out of range"):
        Magnet(HASH, peers=[("h", 65536)])


# -- building ------------------------------------------------------------------------------


def test_uri_form() -> None:
    m = Magnet(
        HASH,
        "a b+c/d",
        ["http://t/a?x=1&y=2", "udp://u:1"],
        [("2001:db8::1", 6881), ("1.2.3.4", 80)],
        ["https://w/f"],
        [("so", "0,2")],
    )
    assert m.uri() == (
        f"magnet:?xt=urn:btih:{HEX}&dn=a%20b%2Bc/d"
        "&tr=http%3A%2F%2Ft%2Fa%3Fx%3D1%26y%3D2&tr=udp%3A%2F%2Fu%3A1&ws=https%3A%2F%2Fw%2Ff"
        "&x.pe=[2001:db8::1]:6881&x.pe=1.2.3.4:80&so=0,2"
    )
    assert parse_magnet(m.uri()) == m


def test_a_real_world_magnet_built_back_parses_equal() -> None:
    m = parse_magnet(REAL)
    assert parse_magnet(m.uri()) == m


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
_label = st.from_regex(r"[a-z0-9]([a-z0-9_-]{0,10}[a-z0-9])?", fullmatch=True)
_host = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.lists(_label, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda h: not all(c in "0123456789." for c in h)),
)
_extra_key = st.sampled_from(["so", "xl", "kt", "as", "xs", "mt", "x.foo"])


@given(
    info_hash=st.binary(min_size=20, max_size=20),
    name=st.none() | _text,
    trackers=st.lists(_text, unique=True, max_size=4),
    peers=st.lists(st.tuples(_host, st.integers(1, 65535)), unique=True, max_size=4),
    web_seeds=st.lists(_text, unique=True, max_size=3),
    extra=st.lists(st.tuples(_extra_key, st.text(max_size=10).filter(str.isprintable))),
)
def test_round_trip(
    info_hash: bytes,
    name: str | None,
    trackers: list[str],
    peers: list[tuple[str, int]],
    web_seeds: list[str],
    extra: list[tuple[str, str]],
) -> None:
    m = Magnet(info_hash, name, trackers, peers, web_seeds, extra)
    assert parse_magnet(m.uri()) == m


# -- Torrent.magnet() uses the same builder ------------------------------------------------


def test_a_torrents_magnet_names_its_trackers_once_and_its_web_seeds() -> None:
    info = {
        b"name": "Ünï code.bin".encode(),
        b"piece length": 16384,
        b"length": 10,
        b"pieces": b"\0" * 20,
    }
    data = bencoding.encode(
        {
            b"info": info,
            b"announce": b"http://a/",
            b"announce-list": [[b"http://a/"], [b"udp://b:80", b"http://a/"]],
            b"url-list": [b"http://w/f"],
        }
    )
    t = metainfo.parse(data)
    m = parse_magnet(t.magnet())
    assert m == Magnet(t.info_hash, "Ünï code.bin", ["http://a/", "udp://b:80"], [], ["http://w/f"])


# -- swarm info MAGNET ---------------------------------------------------------------------


def test_swarm_info_on_a_magnet(capsys: pytest.CaptureFixture[str]) -> None:
    uri = REAL + "&tr=ftp%3A%2F%2Fnope"
    assert main(["info", uri]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "name:         Big Buck Bunny",
        f"info-hash:    {HEX}",
        "tracker:      udp://explodie.org:6969",
        "tracker:      udp://tracker.coppersurfer.tk:6969",
        "tracker:      wss://tracker.btorrent.xyz",
        "unusable:     wss://tracker.btorrent.xyz: wss:// is not supported"
        " (only http://, https:// or udp://)",
        "tracker:      ftp://nope",
        "unusable:     ftp://nope: ftp:// is not supported (only http://, https:// or udp://)",
        "peer:         [2001:db8::1]:6881",
        "peer:         10.0.0.2:51413",
        "peer:         peer.example.org:6881",
        "web seed:     https://webtorrent.io/torrents/",
        f"magnet:       {parse_magnet(uri).uri()}",
    ]


def test_swarm_info_json_on_a_magnet(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json", f"magnet:?xt=urn:btih:{B32}&x.pe=1.2.3.4:5"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "info_hash": HEX,
        "name": None,
        "announce": [],
        "peers": ["1.2.3.4:5"],
        "url_list": [],
        "extra": [],
        "magnet": f"magnet:?xt=urn:btih:{HEX}&x.pe=1.2.3.4:5",
    }


def test_swarm_info_on_a_bad_magnet_as_a_process() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "swarm", "info", "magnet:?xt=urn:btih:1234&tr=http://t/a"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (
        "error: info-hash '1234' has 4 characters: it should be 40 hex or 32 base32\n"
    )
