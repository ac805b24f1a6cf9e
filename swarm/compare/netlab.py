"""A network lab of Linux namespaces for ``swarm compare --lab netns``: each host in a network
namespace of its own on one bridge, its upload and download capped by the kernel (``tc`` tbf
on its veth pair), not by swarm's own token bucket.

The shape (K: the lab's /24, ``P``: its prefix)::

    root namespace:  veth P-gw, 198.18.K.1/24   (compare reaches every host through it; the
      │                                          hosts see the root namespace at this address)
    namespace P-sw:  gw ── bridge br ── h1 ── its egress is host 1's download (tbf)
                       169.254.0.1 │     └─ namespace P-1: lo; eth0 198.18.K.2/32, its egress
                       (router)    │        is host 1's upload (tbf); 198.18.K.0/24 via br
                                   └── h2 ... h253 (198.18.K.254): 253 hosts

A host sends everything through the bridge's own address, a router: so each host's neighbour
table holds one entry (the router), and the router's one per host. With the hosts on one /24 of
the bridge each host held an entry for every peer it met, and the kernel's neighbour table is
one for all namespaces (gc_thresh3, 1024 by default, set in the root namespace only): at N = 64
it overflowed, and a fifth of the downloaders had every dial dropped unsent, a SYN retried for
tens of seconds (N = 100: one never finished).

The bridge has a namespace of its own, not the root one: where br_netfilter is loaded (Docker
loads it) bridged frames pass the iptables FORWARD chain of the bridge's namespace, and Docker
sets that chain's policy to DROP; in P-sw the chains are empty. Nothing of the machine's own is
touched: the root namespace gets one link, P-gw, with the lab's first address.

The addresses come from 198.18.0.0/15, the range RFC 2544 sets aside for benchmarks: nothing
on the Internet uses it and few machines route it, unlike 10/8 (Docker, Kubernetes, VPNs) or
the other private ranges. Each lab takes the first /24 of it that no address and no route of
the root namespace overlaps (routes of /8 or broader are catch-alls, not a use of the range),
under a lock file, so two labs (in one process or two) never share a subnet.

The default prefix ``sl<pid>_<n>`` is unique per run; :meth:`NetLab.close` removes every name
of it whatever happened, :meth:`NetLab.sweep` those of a crashed run (:meth:`NetLab.stale`
finds them). :func:`lab_problem` says in one line why the lab cannot run here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from swarm.compare.netlab_cmd import (
    COMMAND_TIMEOUT,
    explain,
    names,
    remove,
    run,
    subnet_lock,
    taken_networks,
)
from swarm.errors import CompareError

LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
MAX_HOSTS = 253  # one /24: .1 is the uplink, .2 to .254 the hosts

# Shaping: tbf counts whole Ethernet frames (headers included) on a veth of MTU 1500, so TCP
# data (1448 bytes with timestamps) gets TCP_PAYLOAD_SHARE of a cap: 95.6%.
FRAME = 1514
TCP_PAYLOAD_SHARE = 1448 / FRAME
HZ_FLOOR = 100  # the coarsest timer tick a kernel is built with (CONFIG_HZ=100)
QUEUE_SECONDS = 0.1  # how much of its rate a capped link may hold in its queue
MIN_QUEUE = 16 * FRAME

# The hosts' router: the bridge, at a link-local address (every /24 host address is a host's
# or the uplink's). A host resolves it alone; it resolves the hosts.
ROUTER = "169.254.0.1"
ROUTER_MAC = "02:00:00:00:00:01"  # locally administered; each lab's bridge is a world apart
_ROUTING = (
    "echo 1 > /proc/sys/net/ipv4/ip_forward && "
    "for c in all default br; do echo 0 > /proc/sys/net/ipv4/conf/$c/send_redirects; done"
)

_PREFIX = re.compile(r"[a-z0-9_]{1,12}")  # "-gw" after it: 15 characters, IFNAMSIZ - 1
_DEFAULT_NAME = re.compile(r"(sl([0-9a-f]+)_[0-9a-f]+)-(?:gw|sw|\d+)")  # sl<pid>_<n>, hex
_labs = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Host:
    """One host of a lab: a network namespace with one address on the lab's bridge."""

    name: str  # the caller's label ("seed", "downloader 3")
    netns: str
    address: str
    port: str  # its veth's end on the bridge, in the lab's switch namespace
    up: int | None  # bytes/s, None: unshaped
    down: int | None

    def argv(self, *cmd: str) -> list[str]:
        """*cmd* run inside the host's namespace. ``ip netns exec`` execs *cmd* itself: the PID
        is the command's, signals reach it, and inherited file descriptors (a ``--status-fd``
        pipe passed with ``pass_fds``) stay open."""
        return ["ip", "netns", "exec", self.netns, *cmd]


def tbf(rate: int) -> list[str]:
    """The arguments after ``tc qdisc add dev DEV root`` that cap DEV's egress at *rate* bytes/s.

    burst: at least what the rate earns in one timer tick (rate/HZ; HZ may be as low as 100, so
    rate/100: 10 KiB at 1 MiB/s), or tokens would be lost between ticks and the link fall short
    of its rate; and at least two full frames, since tbf never sends a frame bigger than its
    bucket. A burst is sent at once, so over a window of T seconds a link may run over its cap
    by burst / (rate * T): 0.2% over 5 s at 1 MiB/s. limit: the bytes it may queue beyond the
    bucket, 0.1 s of its rate but at least 16 frames, enough that TCP keeps the link busy
    through a loss (a queue of a few frames starves it) without piling up seconds of delay.
    """
    if rate <= 0:
        raise ValueError(f"a rate must be positive, not {rate}")
    burst = max(rate // HZ_FLOOR, 2 * FRAME)
    limit = burst + max(int(rate * QUEUE_SECONDS), MIN_QUEUE)
    # tc reads "bps" as bytes per second, a trap for a reader: bits say the same plainly.
    return ["tbf", "rate", f"{rate * 8}bit", "burst", str(burst), "limit", str(limit)]


def free_subnet(taken: Iterable[ipaddress.IPv4Network], start: int = 0) -> ipaddress.IPv4Network:
    """The first /24 of :data:`LAB_RANGE`, from the *start*-th on, that overlaps none of
    *taken*; :class:`CompareError` if none is left."""
    subnets = list(LAB_RANGE.subnets(new_prefix=24))
    used = [net for net in taken if net.prefixlen > 8]  # a default route uses no range
    for k in range(len(subnets)):
        net = subnets[(start + k) % len(subnets)]
        if not any(net.overlaps(u) for u in used):
            return net
    raise CompareError(f"network lab: every /24 of {LAB_RANGE} is in use on this machine")


def default_prefix() -> str:
    """A prefix no other run uses: this process's id and a counter."""
    return f"sl{os.getpid():x}_{next(_labs) % 4096:x}"  # at most 12 characters


def lab_problem() -> str | None:
    """Why the lab cannot run here, in one line, or None if it can. Tries a veth pair, a
    bridge and tbf in a throwaway namespace of its own, which vanishes with its process."""
    if not sys.platform.startswith("linux"):
        return "--lab netns needs Linux (network namespaces)"
    if os.geteuid() != 0:
        return "--lab netns needs root: it makes network namespaces, veth pairs and a bridge"
    for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"--lab netns needs `{tool}` (Debian package {package})"
    probe = "ip link add name probe0 type veth peer name probe1 && "
    probe += "ip link add name probe2 type bridge && "
    probe += "tc qdisc add dev probe0 root " + " ".join(tbf(1 << 20))
    cmd = ["unshare", "--net", "sh", "-c", probe]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"--lab netns cannot run here: {exc}"
    if done.returncode != 0:
        return f"--lab netns cannot run here: {explain(done.stderr, done.returncode)}"
    return None


class NetLab:
    """Hosts on one bridge, made on demand, all removed by :meth:`close`: use it as ``async
    with NetLab() as lab:``. :meth:`add_host` calls may run concurrently."""

    def __init__(self, *, prefix: str | None = None) -> None:
        self.prefix = default_prefix() if prefix is None else _checked(prefix)
        self.uplink = f"{self.prefix}-gw"  # in the root namespace
        self.switch = f"{self.prefix}-sw"  # the namespace of the bridge
        self.subnet: ipaddress.IPv4Network | None = None
        self.hosts: list[Host] = []
        self._names: set[str] = set()
        self._next = 1
        self._start_lock = asyncio.Lock()
        self._closing: asyncio.Task[list[str]] | None = None

    @property
    def gateway(self) -> str:
        """The uplink's address: the root namespace (compare itself) as the hosts see it."""
        if self.subnet is None:
            raise CompareError("network lab: not started")
        return str(self.subnet[1])

    async def __aenter__(self) -> NetLab:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Take a free /24, make the bridge and the root namespace's uplink (done once)."""
        async with self._start_lock:
            if self._closing is not None:
                raise CompareError("network lab: already closed")
            if self.subnet is not None:
                return
            # IPv4 only (addrgenmode none): no IPv6 link-local address on any link of the
            # lab, so no router solicitations or neighbour discovery in the shaped queues.
            sw, gw = self.switch, self.uplink
            await run("ip", "netns", "add", sw)
            # The bridge is also the hosts' router (see the module's docstring): a MAC of its
            # own (a bridge's follows its ports' otherwise), forwarding on, no redirects.
            script = f"link add name br address {ROUTER_MAC} type bridge\n"
            script += f"link set dev br addrgenmode none\naddr add {ROUTER}/32 dev br\n"
            await run("ip", "-n", sw, "-b", "-", stdin=script + "link set dev br up\n")
            await run("ip", "netns", "exec", sw, "sh", "-c", _ROUTING)
            async with subnet_lock():
                subnet = free_subnet(await taken_networks(), start=os.getpid())
                script = f"link add name {gw} type veth peer name gw netns {sw}\n"
                script += f"link set dev {gw} addrgenmode none\n"
                script += f"addr add {subnet[1]}/24 dev {gw}\nlink set dev {gw} up\n"
                await run("ip", "-b", "-", stdin=script)
                # its route is in the table now: the next lab to look sees it taken
            script = "link set dev gw addrgenmode none\nlink set dev gw master br up\n"
            script += f"route add {subnet} dev br src {ROUTER}\n"
            await run("ip", "-n", sw, "-b", "-", stdin=script)
            self.subnet = subnet

    async def add_host(self, name: str, *, up: int | None, down: int | None) -> Host:
        """A new namespace on the bridge with the next address, its upload capped at *up* and
        its download at *down* bytes/s (None: unshaped). A failed step removes what this call
        made and raises :class:`CompareError`."""
        for rate in (up, down):
            if rate is not None and rate <= 0:
                raise ValueError(f"a rate must be positive, not {rate}")
        await self.start()
        assert self.subnet is not None
        if name in self._names:
            raise ValueError(f"the lab has a host named {name!r} already")
        index = self._next
        if index > MAX_HOSTS:
            raise CompareError(f"network lab: at most {MAX_HOSTS} hosts")
        self._next += 1
        self._names.add(name)
        netns, port, address = f"{self.prefix}-{index}", f"h{index}", str(self.subnet[index + 1])
        try:
            await run("ip", "netns", "add", netns)
            script = f"link add name {port} type veth peer name eth0 netns {netns}\n"
            script += f"link set dev {port} addrgenmode none\nlink set dev {port} master br up\n"
            await run("ip", "-n", self.switch, "-b", "-", stdin=script)
            script = "link set dev lo up\nlink set dev eth0 addrgenmode none\n"
            script += f"addr add {address}/32 dev eth0\nlink set dev eth0 up\n"
            script += f"route add {ROUTER} dev eth0\nroute add {self.subnet} via {ROUTER}\n"
            await run("ip", "-n", netns, "-b", "-", stdin=script)
            if up is not None:
                await run("tc", "-n", netns, "qdisc", "add", "dev", "eth0", "root", *tbf(up))
            if down is not None:
                await run("tc", "-n", self.switch, "qdisc", "add", "dev", port, "root", *tbf(down))
        except BaseException:
            self._names.discard(name)
            with contextlib.suppress(CompareError):  # close() tries again and checks
                await remove([], [netns])  # its veth pair goes with it
            raise
        host = Host(name, netns, address, port, up, down)
        self.hosts.append(host)
        return host

    async def link_bytes(self) -> dict[str, tuple[int, int]]:
        """Bytes each host has sent and received so far (Ethernet frames, headers included),
        by the kernel's counters of its port on the bridge; keyed by the hosts' names."""
        ports = json.loads(await run("ip", "-n", self.switch, "-j", "-s", "link", "show"))
        # a port receives what its host sends, and sends what its host receives
        count = {
            p["ifname"]: (p["stats64"]["rx"]["bytes"], p["stats64"]["tx"]["bytes"]) for p in ports
        }
        return {h.name: count[h.port] for h in self.hosts}

    async def close(self) -> None:
        """Remove every namespace, veth and bridge of this lab's prefix, and check that none is
        left (:class:`CompareError` if one is). Runs to its end even when the task is
        cancelled (a signal), then lets the cancellation through. Idempotent."""
        task = self._closing
        if task is None or (task.done() and (task.cancelled() or task.exception())):
            task = self._closing = asyncio.ensure_future(NetLab.sweep(self.prefix))
        cancelled = False
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled():
                    raise
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        task.result()

    @staticmethod
    async def sweep(prefix: str) -> list[str]:
        """Remove the uplink and the namespaces named after *prefix* (``P-gw``, ``P-sw``,
        ``P-1``, ...), say a crashed run's; no other name is touched. Returns the names removed
        (a veth goes with the namespace of either end, the bridge with P-sw)."""
        mine = re.compile(re.escape(_checked(prefix)) + r"-(?:gw|sw|\d+)")
        removed: set[str] = set()
        for _ in range(3):  # an ip command that a killed run left running may add one more
            links, spaces = await names(mine)
            if not links and not spaces:
                break
            removed.update(links + spaces)
            await remove(links, spaces)
        links, spaces = await names(mine)
        if links or spaces:
            left = ", ".join(sorted(set(links + spaces)))
            raise CompareError(f"network lab: could not remove {left}")
        return sorted(removed)

    @staticmethod
    async def stale() -> list[str]:
        """Prefixes of default-named labs whose process is gone from this PID namespace
        (killed before it could close them): each may go to :meth:`sweep`."""
        links, spaces = await names(_DEFAULT_NAME)
        owners = {
            (m[1], int(m[2], 16)) for n in links + spaces if (m := _DEFAULT_NAME.fullmatch(n))
        }
        return sorted({p for p, pid in owners if not Path(f"/proc/{pid}").exists()})


def _checked(prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"a lab prefix is 1 to 12 of a-z, 0-9 and _, not {prefix!r}")
    return prefix
