"""The sans-I/O DHT node: its answers, its own queries, and its defences (no sockets)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm import bencoding
from swarm.dht import krpc
from swarm.dht.krpc import AnnouncePeer, FindNode, GetPeers, NodeInfo, Ping, Response
from swarm.dht.node import BOOTSTRAP_AGAIN, BOOTSTRAP_SOON, PING_AGAIN, QUERY_TIMEOUT, Node
from swarm.dht.ratelimit import MAX_TRACKED, QUERY_BURST
from swarm.dht.routing import REFRESH_AFTER, K, distance
from swarm.dht.store import REPLY_VALUES
from swarm.errors import BencodeError

ME = b"M" * 20
Q = b"q" * 20
H = b"h" * 20
PEER = ("192.0.2.7", 40000)


def _node(**options: object) -> Node:
    return Node(random.Random(1), 0.0, ME, **options)  # type: ignore[arg-type]


def _one(out: list[tuple[bytes, tuple[str, int]]], to: tuple[str, int]) -> krpc.Message:
    assert [addr for _, addr in out] == [to]
    return krpc.decode(out[0][0])


def _answers(
    node: Node, query: krpc.Query, addr: tuple[str, int], now: float = 1.0
) -> krpc.Message:
    out = node.receive(krpc.encode(query), addr, now)
    replies = [krpc.decode(data) for data, to in out if to == addr]
    answers = [m for m in replies if isinstance(m, Response | krpc.Error)]
    assert len(answers) == 1
    return answers[0]


def _fill(node: Node, count: int, rng: random.Random) -> list[NodeInfo]:
    infos = [
        NodeInfo(rng.randbytes(20), (f"10.9.{i // 250}.{i % 250 + 1}", 6881)) for i in range(count)
    ]
    for info in infos:
        node.table.responded(info.id, info.addr, 0.0)
    return infos


def test_a_ping_is_answered_with_our_id_under_its_transaction_id() -> None:
    node = _node()
    out = node.receive(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe", PEER, 1.0)
    # the answer first; then a ping of our own, since the querier may belong in our table
    assert out[0] == (b"d1:rd2:id20:" + ME + b"e1:t2:aa1:y1:re", PEER)
    assert isinstance(krpc.decode(out[1][0]), Ping) and out[1][1] == PEER


def test_find_node_is_answered_with_the_k_nearest_good_nodes() -> None:
    rng = random.Random(2)
    node = _node()
    infos = _fill(node, 200, rng)
    held = [c.info for c in node.table.contacts()]
    target = rng.randbytes(20)
    answer = _answers(node, FindNode(b"x", Q, target), PEER)
    assert isinstance(answer, Response) and answer.nodes is not None
    assert list(answer.nodes) == sorted(held, key=lambda n: distance(n.id, target))[:K]
    assert set(answer.nodes) <= set(infos)


def test_get_peers_then_announce_then_get_peers_finds_the_peer() -> None:
    node = _node()
    _fill(node, 20, random.Random(3))
    first = _answers(node, GetPeers(b"1", Q, H), PEER)
    assert isinstance(first, Response) and first.token and first.nodes and first.values is None
    ok = _answers(node, AnnouncePeer(b"2", Q, H, 6881, first.token), PEER, now=60.0)
    assert ok == Response(b"2", ME)
    implied = AnnouncePeer(b"3", Q, H, 1, first.token, implied_port=True)
    assert _answers(node, implied, PEER, now=61.0) == Response(b"3", ME)
    again = _answers(node, GetPeers(b"4", b"r" * 20, H), ("198.51.100.1", 1), now=62.0)
    assert isinstance(again, Response) and again.nodes and again.token  # nodes too
    assert sorted(again.values or ()) == [(PEER[0], 6881), PEER]  # implied: the UDP port


def test_announce_peer_with_a_bad_token_stores_nothing() -> None:
    node = _node()
    token = _answers(node, GetPeers(b"1", Q, H), PEER)
    assert isinstance(token, Response) and token.token
    other_ip = ("192.0.2.8", PEER[1])
    for query, addr, now in [
        (AnnouncePeer(b"2", Q, H, 6881, b"forged!!"), PEER, 1.0),
        (AnnouncePeer(b"3", Q, H, 6881, token.token), other_ip, 1.0),  # not this IP's
        (AnnouncePeer(b"4", Q, H, 6881, token.token), PEER, 601.0),  # ten minutes on
    ]:
        answer = _answers(node, query, addr, now)
        assert answer == krpc.Error(query.t, krpc.PROTOCOL_ERROR, "bad token")
    assert len(node.store) == 0


def test_bad_queries_get_203_or_204_and_junk_gets_nothing() -> None:
    node = _node()
    bad_id = b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe"
    answer = _one(node.receive(bad_id, PEER, 1.0), PEER)
    assert isinstance(answer, krpc.Error) and (answer.t, answer.code) == (b"aa", 203)
    unknown = bencoding.encode({b"t": b"ab", b"y": b"q", b"q": b"put", b"a": {b"id": Q}})
    answer = _one(node.receive(unknown, PEER, 1.0), PEER)
    assert isinstance(answer, krpc.Error) and (answer.t, answer.code) == (b"ab", 204)
    for junk in (b"", b"garbage", b"d1:t2:aa1:y1:r1:rdee", b"d" * 5000):
        assert node.receive(junk, PEER, 1.0) == []


def test_answers_to_queries_we_did_not_send_are_dropped() -> None:
    node = _node()
    router = ("203.0.113.1", 6881)
    _, out = node.bootstrap([router], 0.0)
    query = _one(out, router)
    assert isinstance(query, FindNode) and query.target == ME
    good = Response(query.t, Q, nodes=())
    assert node.receive(krpc.encode(Response(b"zz", Q)), router, 0.5) == []  # wrong t
    assert node.receive(krpc.encode(good), ("203.0.113.2", 6881), 0.5) == []  # wrong source
    assert len(node.table) == 0
    node.receive(krpc.encode(good), router, 0.5)
    assert node.table.get(Q) is not None
    assert node.receive(krpc.encode(good), router, 0.6) == []  # a second answer: dropped
    assert [s.kind for s in node.pop_finished()] == ["bootstrap"]


def test_an_unanswered_query_times_out_on_tick() -> None:
    node = _node()
    infos = _fill(node, 3, random.Random(4))
    search, out = node.get_peers(H, 0.0)
    assert {addr for _, addr in out} == {i.addr for i in infos}
    assert node.tick(QUERY_TIMEOUT - 0.1) == [] and not search.done
    node.tick(QUERY_TIMEOUT)
    assert search.done and search.peers == [] and node.pop_finished() == [search]
    assert all(c.fails == 1 for c in node.table.contacts())


def test_a_flood_from_one_address_is_rate_limited_and_others_still_get_answers() -> None:
    node = _node()
    answered = 0
    for i in range(10_000):
        query = GetPeers(i.to_bytes(2, "big"), Q, H)
        answered += any(to == PEER for _, to in node.receive(krpc.encode(query), PEER, i / 1000))
    # ten seconds of flood: the burst, then five a second
    assert answered <= QUERY_BURST + 5 * 10 + 1
    assert answered >= QUERY_BURST
    assert _answers(node, Ping(b"ok", Q), ("198.51.100.9", 1), now=10.0) == Response(b"ok", ME)
    stats = node.stats()
    assert (stats["pending"], stats["torrents"], stats["nodes"]) == (2, 0, 0)  # two pings


def test_the_rate_limiter_forgets_old_addresses_to_stay_bounded() -> None:
    node = _node()
    for i in range(3 * MAX_TRACKED):
        node.receive(
            krpc.encode(Ping(b"p", Q)), (f"10.{i // 62500}.{i // 250 % 250}.{i % 250}", 1), 1.0
        )
    assert len(node.limits) == MAX_TRACKED


def test_a_flood_of_announces_with_bad_tokens_stores_nothing() -> None:
    node = _node(query_rate=1e9, query_burst=1e9)  # no rate limit: the tokens alone hold
    rng = random.Random(5)
    for i in range(10_000):
        query = AnnouncePeer(b"t", rng.randbytes(20), rng.randbytes(20), 6881, rng.randbytes(8))
        node.receive(krpc.encode(query), (f"10.{i // 62500}.{i // 250 % 250}.{i % 250}", 1), 1.0)
    assert len(node.store) == 0 and node.store.peer_count() == 0


def test_no_answer_is_much_larger_than_its_query() -> None:
    node = _node()
    _fill(node, 300, random.Random(6))
    for i in range(100):  # more peers than fit one answer
        node.store.announce(H, (f"10.8.0.{i + 1}", 6881), 0.0)
    queries = [Ping(b"t", Q), FindNode(b"t", Q, H), GetPeers(b"t", Q, H), GetPeers(b"t", Q, Q)]
    for query in queries:
        raw = krpc.encode(query)
        answer = node.receive(raw, PEER, 1.0)[0][0]
        assert len(answer) <= 4 * len(raw), query
    for raw in (
        b"d1:t1:x1:y1:qe",
        b"d1:ad2:id1:xe1:q4:ping1:t1:x1:y1:qe",
        b"d1:ade1:q1:z1:t1:x1:y1:qe",
    ):
        answer = node.receive(raw, PEER, 1.0)[0][0]
        assert isinstance(krpc.decode(answer), krpc.Error)
        assert len(answer) <= 3 * len(raw), raw
    with_values = krpc.decode(node.receive(krpc.encode(GetPeers(b"u", Q, H)), PEER, 1.0)[0][0])
    assert isinstance(with_values, Response) and len(with_values.values or ()) == REPLY_VALUES


def test_an_announce_looks_up_then_announces_to_the_nearest_with_their_tokens() -> None:
    rng = random.Random(7)
    node = _node()
    infos = _fill(node, 30, rng)
    search, out = node.announce(H, 51413, 0.0)
    answered = 0
    while out:
        data, addr = out.pop(0)
        query = krpc.decode(data)
        if isinstance(query, GetPeers):
            node_id = next(i.id for i in infos if i.addr == addr)
            token = b"tok" + addr[0].encode()
            out += node.receive(
                krpc.encode(Response(query.t, node_id, nodes=(), token=token)), addr, 1.0
            )
            answered += 1
    assert search.done and search.kind == "announce"
    nearest = sorted(infos, key=lambda i: distance(i.id, H))[:K]
    assert sorted(search.announced_to, key=lambda i: distance(i.id, H)) == nearest
    assert search.queries == answered + K


def test_announces_carry_the_token_and_port() -> None:
    node = _node()
    (info,) = _fill(node, 1, random.Random(8))
    search, out = node.announce(H, 51413, 0.0, implied_port=True)
    query = _one(out, info.addr)
    reply = Response(query.t, info.id, nodes=(), token=b"secret")
    announce = _one(node.receive(krpc.encode(reply), info.addr, 0.1), info.addr)
    assert isinstance(announce, AnnouncePeer)
    assert (announce.info_hash, announce.port, announce.token, announce.implied_port) == (
        H,
        51413,
        b"secret",
        True,
    )


def test_state_saved_and_loaded_keeps_the_id_and_seeds_the_bootstrap() -> None:
    node = _node()
    infos = _fill(node, 40, random.Random(9))
    saved = node.to_state()
    again = Node.from_state(saved, random.Random(10), 100.0)
    assert again.id == ME
    _, out = again.bootstrap([], 100.0)
    held = {c.addr for c in node.table.contacts()}
    assert out and {addr for _, addr in out} <= held <= {i.addr for i in infos}
    assert all(isinstance(krpc.decode(d), FindNode) for d, _ in out)
    for junk in (b"le", b"d2:id3:abce", bencoding.encode({b"id": ME, b"nodes": b"x" * 27})):
        with pytest.raises(BencodeError):
            Node.from_state(junk, random.Random(1), 0.0)


def test_two_nodes_learn_each_other() -> None:
    a = Node(random.Random(11), 0.0)
    b = Node(random.Random(12), 0.0)
    addr_a, addr_b = ("10.0.0.1", 1), ("10.0.0.2", 2)
    nodes = {addr_a: a, addr_b: b}
    _, out = a.bootstrap([addr_b], 0.0)
    queue = [(data, addr_a, to) for data, to in out]
    while queue:
        data, src, dst = queue.pop(0)
        queue += [(d, dst, to) for d, to in nodes[dst].receive(data, src, 0.1)]
    assert a.table.get(b.id) is not None and b.table.get(a.id) is not None


def test_a_node_that_comes_back_with_a_new_id_is_known_by_it_after_a_ping() -> None:
    # libtorrent takes a new id (BEP 42) once it learns its external address, soon after it
    # has joined through us: its next query carries the new id from the same address
    a = Node(random.Random(11), 0.0)
    b = Node(random.Random(12), 0.0)
    addr_a, addr_b = ("10.0.0.1", 1), ("10.0.0.2", 2)
    nodes = {addr_a: a, addr_b: b}

    def deliver(out: list[tuple[bytes, tuple[str, int]]], src: tuple[str, int], now: float) -> None:
        queue = [(data, src, to) for data, to in out]
        while queue:
            data, frm, dst = queue.pop(0)
            queue += [(d, dst, to) for d, to in nodes[dst].receive(data, frm, now)]

    deliver(a.bootstrap([addr_b], 0.0)[1], addr_a, 0.0)
    old_id = a.id
    assert b.table.get(old_id) is not None
    a.id = a.table.own_id = b"N" * 20
    deliver(a.ping(addr_b, 1.0), addr_a, 1.0)  # its query carries the new id
    # b asks that address again (PING_AGAIN after its last ping of it, when a joined); the
    # answer has the new id
    deliver(b.tick(PING_AGAIN), addr_b, PING_AGAIN)
    assert b.table.get(old_id) is None
    known = b.table.get(a.id)
    assert known is not None and known.addr == addr_a
    assert [n.id for n in b.table.closest(a.id)] == [a.id]


def test_a_slow_query_lets_the_lookup_ask_one_more_node() -> None:
    node = _node(query_timeout=2.0, slow_after=1.0)
    _fill(node, 10, random.Random(12))
    search, out = node.find_node(H, 0.0)
    assert len(out) == 3
    assert node.tick(0.9) == []
    more = node.tick(1.0)
    assert len(more) == 3 and {a for _, a in more}.isdisjoint({a for _, a in out})
    assert all(isinstance(krpc.decode(d), FindNode) for d, _ in more)
    # the slow ones may still answer before they time out
    first = krpc.decode(out[0][0])
    node_id = next(c.id for c in node.table.contacts() if c.addr == out[0][1])
    node.receive(krpc.encode(Response(first.t, node_id, nodes=())), out[0][1], 1.5)
    assert NodeInfo(node_id, out[0][1]) in search.lookup.closest()


_SOURCES = st.sampled_from([("10.0.0.1", 1), ("10.0.0.2", 2), ("203.0.113.1", 6881)])
_QUERIES = st.builds(
    lambda kind, t, a, b, port, token: [
        Ping(t, a),
        FindNode(t, a, b),
        GetPeers(t, a, b),
        AnnouncePeer(t, a, b, port, token),
        Response(t, a, nodes=(NodeInfo(b, ("10.0.0.2", port)),), token=token),
    ][kind],
    st.integers(0, 4),
    st.binary(max_size=3),
    st.binary(min_size=20, max_size=20),
    st.binary(min_size=20, max_size=20),
    st.integers(1, 65535),
    st.binary(min_size=1, max_size=8),
)
_DATAGRAMS = st.one_of(
    st.binary(max_size=200),
    _QUERIES.map(krpc.encode),
    _QUERIES.map(krpc.encode).flatmap(
        lambda raw: st.integers(0, len(raw) - 1).map(lambda at: raw[:at] + b"\xff" + raw[at + 1 :])
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_DATAGRAMS, _SOURCES), max_size=30))
def test_a_node_fed_anything_answers_within_bounds_and_keeps_working(
    packets: list[tuple[bytes, tuple[str, int]]],
) -> None:
    node = _node()
    router = ("203.0.113.1", 6881)
    _, out = node.bootstrap([router], 0.0)
    for i, (raw, addr) in enumerate(packets):
        out = node.receive(raw, addr, 0.01 * i)
        replies = [data for data, to in out if to == addr]
        assert len(replies) <= 2  # an answer, and perhaps a ping of a newcomer
        assert all(len(data) <= 4 * max(len(raw), 60) for data in replies)
        # anything else is a lookup moving on, had this been an answer it was waiting for
        others = [krpc.decode(data) for data, to in out if to != addr]
        assert all(isinstance(m, FindNode) for m in others) and len(others) <= 3
        node.tick(0.01 * i)
    answer = _answers(node, Ping(b"ok", Q), ("198.51.100.9", 1), now=1.0)
    assert answer == Response(b"ok", ME)


def test_tick_pings_questionable_nodes_and_refreshes_stale_buckets() -> None:
    node = _node()
    infos = _fill(node, 40, random.Random(13))
    assert node.tick(1.0) == []  # everything fresh and good
    out = node.tick(REFRESH_AFTER)
    sent = [(krpc.decode(d), a) for d, a in out]
    pings = [a for m, a in sent if isinstance(m, Ping)]
    finds = [m for m, _ in sent if isinstance(m, FindNode)]
    assert len(pings) == node.table.bucket_count  # one questionable node a bucket
    assert set(pings) <= {i.addr for i in infos}
    # a refresh lookup a bucket, each for an id in that bucket's range
    assert len({m.target for m in finds}) == node.table.bucket_count
    assert node.pop_finished() == []  # the table's own searches are not the owner's


def test_a_bootstrap_that_found_nobody_is_tried_again_soon_then_less_often() -> None:
    node = _node()
    router = ("203.0.113.1", 6881)
    _, out = node.bootstrap([router], 0.0)
    sent_at, now = [], 0.0
    while now < 120.0:
        for data, addr in out:
            query = krpc.decode(data)
            assert addr == router and isinstance(query, FindNode) and query.target == ME
            sent_at.append(now)
            # a router that knows nobody yet (it has just started, or every node asked it at
            # once): the table holds the router alone
            node.receive(krpc.encode(Response(query.t, Q, nodes=())), router, now + 0.1)
        now += 0.5
        out = node.tick(now)
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:], strict=False)]
    assert (BOOTSTRAP_SOON, BOOTSTRAP_AGAIN) == (2.0, 30.0)
    assert gaps == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]  # soon, then doubling, up to 30 s


def test_a_bootstrap_still_running_is_not_started_again() -> None:
    node = _node()
    router = ("203.0.113.1", 6881)
    _one(node.bootstrap([router], 0.0, again=0.5)[1], router)  # no answer yet
    assert node.tick(1.0) == []  # past its wait, but its query may still be answered
    again = _one(node.tick(QUERY_TIMEOUT), router)  # timed out: done, and made again
    assert isinstance(again, FindNode) and again.target == ME


def test_ipv6_sources_are_dropped_for_now() -> None:
    node = _node()
    query = krpc.encode(AnnouncePeer(b"1", Q, H, 6881, b"x", implied_port=True))
    assert node.receive(query, ("2001:db8::1", 6881), 1.0) == []
    assert node.receive(krpc.encode(Ping(b"2", Q)), ("2001:db8::1", 6881), 1.0) == []
    assert node.receive(krpc.encode(Ping(b"3", Q)), ("host.example", 6881), 1.0) == []
    assert len(node.table) == 0 and node.stats()["pending"] == 0
    with pytest.raises(ValueError):
        node.bootstrap([("router.example", 6881)], 1.0)
    with pytest.raises(ValueError):
        node.ping(("2001:db8::1", 6881), 1.0)
