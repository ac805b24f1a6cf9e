"""A libtorrent DHT node for bench/dht, under the system Python (python3-libtorrent).

    /usr/bin/python3 lt_dht.py HOST

Listens on HOST (any free port; libtorrent never runs its DHT on a loopback address, so HOST
is one of this host's other addresses), with the DHT on and its own limits lifted
(``dht_upload_rate_limit``, ``dht_block_ratelimit``), no LSD, UPnP or NAT-PMP, uTP off, no
bootstrap routers; prints ``dht HOST:PORT`` once its UDP socket is up, then serves until it
is killed.
"""

import sys
import time

import libtorrent as lt  # type: ignore[import-not-found]  # the system Python only


def main() -> None:
    host = sys.argv[1]
    ses = lt.session(
        {
            "listen_interfaces": f"{host}:0",
            "enable_dht": True,
            "dht_bootstrap_nodes": "",
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "dht_upload_rate_limit": 1 << 30,
            # not more: libtorrent compares a count with ten times this, in an int
            "dht_block_ratelimit": 1_000_000,
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "alert_mask": lt.alert.category_t.error_notification,
        }
    )
    deadline = time.monotonic() + 20
    while ses.listen_port() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    while not ses.is_dht_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"dht {host}:{ses.listen_port()}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
