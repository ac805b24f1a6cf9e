"""uTP's fast paths: runs of datagrams sent with UDP segmentation offload (swarm.utp.batch, the
shell's _send_all on a real socket), and the receive fast path for in-order data
(UtpConnection.receive_in_order, through the mux) against the full path."""

from __future__ import annotations

import asyncio
import copy
import random
import socket

from swarm.utp.batch import MAX_SEGMENTS, runs
from swarm.utp.connection import PAYLOAD_SIZE, UtpConnection
from swarm.utp.mux import UtpMux
from swarm.utp.packet import PacketType, decode, encode
from swarm.utp_io import send_run
from swarm.utp_shell import UtpEndpoint

A, B = ("10.0.0.1", 6881), ("10.0.0.2", 6881)


def sizes(*lens: int) -> list[bytes]:
    return [bytes([i % 256]) * n for i, n in enumerate(lens)]


def connected(seed: int, t0: float) -> tuple[UtpConnection, UtpMux, UtpConnection]:
    """A client connection and the server's (and its mux) after the handshake at *t0*, the
    client's window opened wide so that it sends all it is given at once."""
    client_mux, server_mux = UtpMux(random.Random(seed)), UtpMux(random.Random(seed + 1))
    client, out = client_mux.connect(B, t0)
    routed = server_mux.receive(out.datagrams[0], A, t0 + 0.01)
    server = routed.connection
    assert server is not None
    client.receive(routed.output.datagrams[0], t0 + 0.02)
    client.ledbat.cwnd = 1e6
    return client, server_mux, server


def test_runs_are_equal_sizes_with_a_shorter_last_one() -> None:
    d = sizes(1400, 1400, 1400, 700, 1400, 1406, 1406, 20)
    assert list(runs(d)) == [(0, 4, 1400), (4, 5, 1400), (5, 8, 1406)]
    assert list(runs(sizes(20))) == [(0, 1, 20)]
    assert list(runs([])) == []


def test_runs_stay_within_the_kernels_limits() -> None:
    d = sizes(*[1400] * 200)
    got = list(runs(d))
    assert all(end - start <= min(MAX_SEGMENTS, 65507 // 1400) for start, end, _ in got)
    assert got[0][0] == 0 and got[-1][1] == 200
    assert all(a[1] == b[0] for a, b in zip(got, got[1:], strict=False))


def test_a_run_arrives_as_the_same_datagrams() -> None:
    async def main() -> list[bytes]:
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5.0)
        ep = UtpEndpoint()
        await ep.start("127.0.0.1", 0)
        try:
            datagrams = [random.Random(i).randbytes(n) for i, n in enumerate([1400] * 50 + [9])]
            ep._send_all(datagrams, rx.getsockname())
            got = [rx.recv(65536) for _ in datagrams]
            assert got == datagrams
            return got
        finally:
            rx.close()
            await ep.stop()

    asyncio.run(main())


def test_the_in_order_fast_path_does_what_the_full_path_does() -> None:
    rng = random.Random(7)
    client, server_mux, server = connected(1, 1000.0)
    datagrams = client.send(rng.randbytes(40 * PAYLOAD_SIZE), 1000.03).datagrams
    slow = copy.deepcopy(server)
    for i, d in enumerate(datagrams):
        now = 1000.05 + i * 0.001
        fast_out = server_mux.receive(d, A, now, defer_ack=True).output
        slow_out = slow.receive(decode(d), now, defer_ack=True)
        assert fast_out.events == slow_out.events
        assert fast_out.datagrams == slow_out.datagrams
    for name in ("_reply_micro", "peer_window", "_acks_owed", "_need_ack"):
        assert getattr(server, name) == getattr(slow, name), name
    assert server.receiver.ack_nr == slow.receiver.ack_nr
    assert server.sender._dup_acks == slow.sender._dup_acks
    assert server.sender._last_ack == slow.sender._last_ack
    assert server.flush(1001.0).datagrams == slow.flush(1001.0).datagrams


def test_datagrams_joined_by_gro_are_read_one_by_one_and_others_go_to_other() -> None:
    async def main() -> None:
        got: list[bytes] = []
        ep = UtpEndpoint(other=lambda data, addr: got.append(data))
        await ep.start("127.0.0.1", 0)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tx.bind(("127.0.0.1", 0))
            datagrams = [b"d" + bytes([i]) * 999 for i in range(30)] + [b"d1:ae"]
            start, end, size = next(runs(datagrams))
            assert (start, end, size) == (0, len(datagrams), 1000)
            send_run(tx, datagrams, size, ep.address)  # arrives whole where GRO is on
            async with asyncio.timeout(5.0):
                while len(got) < len(datagrams):
                    await asyncio.sleep(0.01)
            assert got == datagrams
        finally:
            tx.close()
            await ep.stop()

    asyncio.run(main())


def test_a_run_of_full_packets_is_encoded_as_the_codec_encodes_each() -> None:
    client, _, _ = connected(3, 2000.0)
    first = client.sender.snd_nxt
    data = random.Random(9).randbytes(25 * PAYLOAD_SIZE + 100)
    datagrams = client.send(data, 2000.5).datagrams
    assert len(datagrams) == 26
    pkts = [decode(d) for d in datagrams]
    assert b"".join(p.payload for p in pkts) == data
    for i, (d, p) in enumerate(zip(datagrams, pkts, strict=True)):
        assert p.type is PacketType.DATA and p.seq_nr == (first + i) & 0xFFFF
        assert p.connection_id == client.send_id and p.ack_nr == client.receiver.ack_nr & 0xFFFF
        assert p.timestamp == int(2000.5 * 1e6) & 0xFFFFFFFF and p.sack is None
        assert d == encode(p)
    assert client.sender.snd_nxt == first + 26
    assert client.sender.in_flight == client.sender.unacked_bytes == len(data)


def test_a_run_read_in_one_go_does_what_the_full_path_does() -> None:
    rng = random.Random(8)
    client, _, server = connected(5, 3000.0)
    datagrams = client.send(rng.randbytes(40 * PAYLOAD_SIZE), 3000.03).datagrams
    slow = copy.deepcopy(server)
    # the run stops at a packet out of order (the 31st is held back), as GRO reads may
    views = [memoryview(d) for d in datagrams[:30] + datagrams[31:35]]
    n, fast_out = server.receive_run(views, 3000.1)
    slow_events: list[object] = []
    slow_datagrams: list[bytes] = []
    for d in datagrams[:30]:
        o = slow.receive(decode(d), 3000.1, defer_ack=True)
        slow_events += o.events
        slow_datagrams += o.datagrams
    assert n == 30
    assert [bytes(e.data) for e in fast_out.events] == [bytes(e.data) for e in slow_events]
    assert fast_out.datagrams == slow_datagrams
    assert server.receiver.ack_nr == slow.receiver.ack_nr
    assert server.flush(3001.0).datagrams == slow.flush(3001.0).datagrams
