"""libtorrent as a Mainline DHT peer in a namespace lab, for tests/interop/test_dht_netns.py.
Runs under the system Python (/usr/bin/python3, Debian's python3-libtorrent), inside a lab
host's namespace (``ip netns exec NS /usr/bin/python3 lt_dht_peer.py ...``).

    lt_dht_peer.py seed T.torrent DATA_DIR ADDRESS ROUTER TIMEOUT [NAME=VALUE ...]
        once its DHT has bootstrapped, adds the torrent, checks the data, prints "seeding
        PORT" and seeds (libtorrent announces it in the DHT by itself) until killed or TIMEOUT
        seconds pass
    lt_dht_peer.py fetch INFO_HASH OUT_DIR ADDRESS ROUTER TIMEOUT [NAME=VALUE ...]
        once its DHT has bootstrapped, adds a bare magnet (the info-hash only: no tracker, no
        peer), prints "listening PORT", "metadata NAME" once it has the metadata and "done"
        once every piece is verified and the files are flushed, then "dht nodes HOST:PORT
        ..." (the nodes in libtorrent's routing table); exits 0 then, 1 at the deadline

Both print "dht reply N" when a DHT lookup of theirs found N peers and "dht announce IP PORT"
when a node announced a peer to their DHT node.

ADDRESS is the host's lab address: libtorrent listens there, TCP and UDP on one port, and its
DHT runs on that socket (an address given as such is never "local-network" to libtorrent,
which opens no DHT on a socket that is: session_impl.cpp, reopen_listen_sockets). Each lab
host has an address of its own; on loopback every node would share 127.0.0.1, and with
``dht_restrict_routing_ips`` libtorrent keeps one node per IP address in its table. ROUTER
(HOST:PORT, a ``swarm dht`` node) is its only DHT bootstrap node: ``dht_bootstrap_nodes``
replaces libtorrent's default (dht.libtorrent.org:25401), so no public router is ever
dialled. NAME=VALUE pairs override settings (an integer, or true/false), as a test or a
person probing needs.

The settings are lt_helper's (uTP off, plain connections, no LSD, UPnP or NAT-PMP; a fresh
session, so no saved DHT state) with only these changed: ``enable_dht`` on,
``dht_bootstrap_nodes`` and ``listen_interfaces`` as above, and
``allow_multiple_connections_per_ip`` back to libtorrent's default (off: every lab host has an
address of its own, so only lt_helper's loopback runs need it). libtorrent's DHT defaults all
stay, and need not go though every lab node is in one /24:

- ``dht_restrict_routing_ips`` (one node per /24 in a bucket): libtorrent never puts its
  routers in its table, so the table's one lab node is the other swarm node (a seed's);
- ``dht_restrict_search_ips`` (one node per /24 in a lookup): it exempts the nodes a lookup
  starts from, which here are the router (libtorrent adds its routers to any lookup of fewer
  than 3 nodes) and that one table node, and the router alone knows every announce;
- ``dht_ignore_dark_internet``: its "dark" networks are a list of class-A /8s
  (dht_tracker.cpp), and 198.18.0.0/15 is not among them.

In a bigger lab the first two shape what libtorrent keeps (with five hosts its table held one
lab node and refused the others as "in the same /24"), yet both directions still worked, since
every lookup asks the router and the router holds every announce. What does break it:
``dht_enforce_node_id`` (off by default) drops every message from a node whose id is not
derived from its IP address (BEP 42), which swarm's ids are not.
"""

import os
import sys
import time
import warnings

import libtorrent as lt  # type: ignore[import-not-found]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lt_helper  # type: ignore[import-not-found]  # noqa: E402


def settings(address: str, router: str, overrides: tuple[str, ...]) -> dict[str, object]:
    pack: dict[str, object] = lt_helper.settings()
    pack.update(
        {
            "enable_dht": True,
            "dht_bootstrap_nodes": router,
            "listen_interfaces": f"{address}:0",
            "allow_multiple_connections_per_ip": False,
            "alert_mask": pack["alert_mask"] | lt.alert.category_t.dht_notification,
        }
    )
    for item in overrides:
        name, value = item.split("=", 1)
        lowered = value.lower()
        pack[name] = lowered == "true" if lowered in ("true", "false") else int(value)
    return pack


def start(address: str, router: str, timeout: str, overrides: tuple[str, ...]) -> lt.session:
    """A session whose DHT has bootstrapped (its deadline: now + *timeout*), ready for a
    torrent. libtorrent starts its DHT a moment after the session, and a torrent added before
    that has no early DHT announce: its first comes with the regular timer, after
    ``dht_announce_interval`` (15 minutes) divided by the number of torrents."""
    ses = lt.session(settings(address, router, overrides))
    if lt_helper.wait_alert(ses, lt.dht_bootstrap_alert, time.monotonic() + float(timeout)):
        return ses
    print("error: the DHT did not bootstrap", flush=True)
    sys.exit(1)


def dht_nodes(ses: lt.session) -> list[str]:
    """The nodes in libtorrent's routing table now, as HOST:PORT (dht_live_nodes, asked of
    each of its DHT node ids; the deprecated dht_state is these bindings' one way to them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        state = ses.dht_state()
    out = []
    for raw in state.get(b"node-id", []):  # 20-byte id, then the socket's IPv4 address
        ses.dht_live_nodes(lt.sha1_hash(raw[:20]))
        alert = lt_helper.wait_alert(ses, lt.dht_live_nodes_alert, time.monotonic() + 2.0)
        for node in alert.nodes if alert is not None else []:
            host, port = node["endpoint"]
            out.append(f"{host}:{port}")
    return out


def report(alert: lt.alert) -> None:
    """Print what the test checks: a DHT lookup's answer (``dht reply N``: N peers), and a node
    that announced a peer to ours (``dht announce IP PORT``)."""
    if isinstance(alert, lt.dht_reply_alert):
        print(f"dht reply {alert.num_peers}", flush=True)
    elif isinstance(alert, lt.dht_announce_alert):
        print(f"dht announce {alert.ip} {alert.port}", flush=True)


def cmd_seed(
    torrent: str, data_dir: str, address: str, router: str, timeout: str, *overrides: str
) -> None:
    ses = start(address, router, timeout, overrides)
    h = lt_helper.add(ses, torrent, data_dir)
    h.force_recheck()
    deadline = time.monotonic() + float(timeout)
    while not h.status().is_seeding:
        if time.monotonic() > deadline:
            print("error: data did not check out", flush=True)
            sys.exit(1)
        time.sleep(0.02)
    print(f"seeding {ses.listen_port()}", flush=True)
    while time.monotonic() < deadline:  # libtorrent announces in the DHT on its own
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            report(a)
    sys.exit(0)


def cmd_fetch(
    info_hash: str, out_dir: str, address: str, router: str, timeout: str, *overrides: str
) -> None:
    ses = start(address, router, timeout, overrides)
    params = lt.add_torrent_params()
    params.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(info_hash)))
    params.save_path = out_dir
    h = ses.add_torrent(params)
    print(f"listening {ses.listen_port()}", flush=True)
    deadline = time.monotonic() + float(timeout)
    said = False  # libtorrent looks the info-hash up in the DHT on its own
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.metadata_received_alert):
                print("metadata", a.handle.torrent_file().name(), flush=True)
                said = True
            report(a)
        st = h.status()
        if said and st.is_seeding:
            lt_helper.flush(ses, h)
            print("done", flush=True)
            print("dht nodes", *dht_nodes(ses), flush=True)
            sys.exit(0)
    st = h.status()
    print(
        f"error: timed out; metadata {st.has_metadata}, progress {st.progress:.3f}, "
        f"peers {st.num_peers}, dht nodes {' '.join(dht_nodes(ses)) or 'none'}",
        flush=True,
    )
    sys.exit(1)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"seed": cmd_seed, "fetch": cmd_fetch}[cmd](*args)
