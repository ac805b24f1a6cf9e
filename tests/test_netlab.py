"""The network lab (swarm/compare/netlab.py): its pure parts anywhere; real namespaces, veths,
a bridge and tbf where :func:`lab_problem` says the lab can run (root), else skipped with its
reason, except under CI (CI=true), which runs as root and must run them. Every wait is bounded;
every process started here is ended by its PID."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from swarm.compare import netlab
from swarm.compare.netlab import FRAME, Host, NetLab, free_subnet, lab_problem, tbf
from swarm.errors import CompareError
from swarm.status import MAX_LINE, Event, decode

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
WAIT = 30.0  # seconds any one step may take

# A tiny network tool for the hosts: "sink ADDR" counts what one connection sends; "send ADDR
# PORT SECONDS" sends as fast as it may; "echo ADDR" answers each connection's line.
TOOL = r"""
import json, socket, sys, time
role, addr = sys.argv[1], sys.argv[2]
if role == "send":
    s = socket.create_connection((addr, int(sys.argv[3])))
    end, block = time.monotonic() + float(sys.argv[4]), b"x" * 65536
    while time.monotonic() < end:
        s.sendall(block)
    s.close()
    sys.exit(0)
server = socket.create_server((addr, 0))
print(server.getsockname()[1], flush=True)
if role == "echo":
    while True:
        c, peer = server.accept()
        c.sendall(c.makefile("rb").readline().strip() + b" from " + peer[0].encode() + b"\n")
        c.close()
c, _ = server.accept()
total = first_len = 0
first = last = 0.0
while chunk := c.recv(1 << 16):
    last = time.monotonic()
    if not total:
        first, first_len = last, len(chunk)
    total += len(chunk)
print(json.dumps({"bytes": total, "rate": (total - first_len) / (last - first)}), flush=True)
"""


@pytest.fixture
def root_lab() -> None:
    problem = lab_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}, and CI must run the network lab's tests")
        pytest.skip(problem)


# -- pure parts ---------------------------------------------------------------------------


def test_tbf_burst_covers_a_tick_and_two_frames_and_the_rate_is_in_bits() -> None:
    args = tbf(MiB)
    opts = dict(zip(args[1::2], args[2::2], strict=True))
    assert args[0] == "tbf" and opts["rate"] == f"{8 * MiB}bit"
    assert int(opts["burst"]) >= MiB // 100  # rate / HZ at HZ = 100
    assert int(opts["limit"]) - int(opts["burst"]) >= MiB // 10
    slow = dict(zip(tbf(10_000)[1::2], tbf(10_000)[2::2], strict=True))
    assert int(slow["burst"]) >= 2 * FRAME  # tbf never sends a frame bigger than its bucket
    with pytest.raises(ValueError):
        tbf(0)


def test_free_subnet_skips_what_is_in_use_but_not_catch_all_routes() -> None:
    net = ipaddress.IPv4Network
    assert free_subnet([net("0.0.0.0/0"), net("0.0.0.0/1"), net("192.0.2.0/24")]) == net(
        "198.18.0.0/24"
    )
    assert free_subnet([net("198.18.0.0/16")]) == net("198.19.0.0/24")
    assert free_subnet([net("198.18.0.0/24")], start=511) == net("198.19.255.0/24")
    assert free_subnet([net("198.19.255.0/24")], start=511) == net("198.18.0.0/24")
    with pytest.raises(CompareError, match="in use"):
        free_subnet([net("198.18.0.0/15")])


def test_names_are_unique_per_run_and_fit_an_interface_name() -> None:
    a, b = NetLab(), NetLab()
    assert a.prefix != b.prefix
    for lab in (a, b):
        assert len(lab.uplink) <= 15  # the one name of the root namespace: IFNAMSIZ - 1
    assert len(NetLab(prefix="x" * 12).uplink) == 15
    for bad in ("", "a-b", "UPPER", "x" * 13, "../x"):
        with pytest.raises(ValueError):
            NetLab(prefix=bad)
    host = Host("seed", "p-1", "198.18.0.2", "h1", None, None)
    assert host.argv("python3", "-V") == ["ip", "netns", "exec", "p-1", "python3", "-V"]


def test_lab_problem_says_why_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert lab_problem() == (
        "--lab netns needs root: it makes network namespaces, veth pairs and a bridge"
    )
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(netlab.shutil, "which", lambda tool: None if tool == "tc" else tool)
    assert lab_problem() == "--lab netns needs `tc` (Debian package iproute2)"


# -- real namespaces ----------------------------------------------------------------------


async def _start(*argv: str) -> tuple[asyncio.subprocess.Process, str]:
    """Start a process and return it with its first line of output."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(WAIT):
            line = await proc.stdout.readline()
    except BaseException:
        await _finish(proc, kill=True)
        raise
    if not line:
        _, err = await _finish(proc)
        raise AssertionError(f"{argv[-3:]} printed nothing: {err}")
    return proc, line.decode().strip()


async def _finish(proc: asyncio.subprocess.Process, kill: bool = False) -> tuple[str, str]:
    """Its remaining output once it exits, within the deadline (killed by PID if not, or at
    once with *kill*)."""
    if kill and proc.returncode is None:
        proc.kill()
    try:
        async with asyncio.timeout(WAIT):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return (out or b"").decode(), (err or b"").decode()


@contextlib.asynccontextmanager
async def _echo(host: Host) -> AsyncIterator[int]:
    proc, port = await _start(*host.argv(sys.executable, "-c", TOOL, "echo", host.address))
    try:
        yield int(port)
    finally:
        proc.kill()
        await proc.wait()


async def _ask(host: Host | None, address: str, port: int) -> str:
    """A line through a TCP connection from *host* (None: the root namespace)."""
    code = "import socket,sys; s=socket.create_connection((sys.argv[1],int(sys.argv[2])),5)\n"
    code += "s.sendall(b'hello\\n'); print(s.makefile().readline().strip())"
    argv = [sys.executable, "-c", code, address, str(port)]
    proc, line = await _start(*(host.argv(*argv) if host else argv))
    await _finish(proc)
    return line


async def _rate(sender: Host, receiver: Host, seconds: float) -> float:
    """Bytes/s of TCP data from *sender* to *receiver*, measured where it arrives."""
    sink, port = await _start(*receiver.argv(sys.executable, "-c", TOOL, "sink", receiver.address))
    send = sender.argv(sys.executable, "-c", TOOL, "send", receiver.address, port, str(seconds))
    try:
        _, err = await _finish(await asyncio.create_subprocess_exec(*send, stderr=subprocess.PIPE))
    except BaseException:
        await _finish(sink, kill=True)
        raise
    out, err2 = await _finish(sink)
    assert out, err + err2
    return float(json.loads(out)["rate"])


async def _ours(prefix: str) -> list[str]:
    """Every link and namespace whose name starts with *prefix*, as ip lists them."""
    ip_link = ["ip", "-j", "link"]
    links = json.loads(subprocess.run(ip_link, capture_output=True, timeout=WAIT).stdout)
    ip_netns = ["ip", "netns", "list"]
    spaces = subprocess.run(ip_netns, capture_output=True, text=True, timeout=WAIT).stdout
    names = [str(link["ifname"]) for link in links] + [s.split()[0] for s in spaces.splitlines()]
    return sorted(n for n in names if n.startswith(prefix))


def test_hosts_reach_each_other_and_the_root_namespace_reaches_them(root_lab: None) -> None:
    async def main() -> None:
        async with NetLab() as lab:
            a, b = await asyncio.gather(
                lab.add_host("a", up=None, down=None), lab.add_host("b", up=MiB, down=MiB)
            )
            assert lab.subnet is not None and {a.address, b.address} < set(map(str, lab.subnet))
            with pytest.raises(ValueError, match="named 'a' already"):
                await lab.add_host("a", up=None, down=None)
            async with _echo(a) as port:
                assert await _ask(b, a.address, port) == f"hello from {b.address}"
                assert await _ask(None, a.address, port) == f"hello from {lab.gateway}"
            async with _echo(b) as port:
                assert await _ask(a, b.address, port) == f"hello from {a.address}"

    asyncio.run(main())


def test_a_host_resolves_only_the_router_however_many_hosts_it_meets(root_lab: None) -> None:
    """The kernel's neighbour table is one for all namespaces (1024 entries by default): with
    an entry per peer in each host it overflowed at N = 64 and dials went unsent for tens of
    seconds. Through the bridge's router each host holds one entry, whoever it talks to."""

    async def main() -> None:
        async with NetLab() as lab:
            a, b, c = await asyncio.gather(
                *(lab.add_host(name, up=None, down=None) for name in "abc")
            )
            for other in (b, c):
                async with _echo(other) as port:
                    assert await _ask(a, other.address, port) == f"hello from {a.address}"
            for host in (a, b, c):
                show = ["ip", "-n", host.netns, "-j", "neigh", "show"]
                out = subprocess.run(show, capture_output=True, timeout=WAIT).stdout
                known = {str(n["dst"]) for n in json.loads(out or b"[]")}
                assert known <= {netlab.ROUTER}, (host.name, known)

    asyncio.run(main())


@pytest.mark.timing
def test_the_kernel_enforces_the_caps_and_leaves_an_unshaped_host_fast(root_lab: None) -> None:
    async def main() -> None:
        async with NetLab() as lab:
            capped_up = await lab.add_host("capped up", up=MiB, down=None)
            capped_down = await lab.add_host("capped down", up=None, down=MiB)
            free1 = await lab.add_host("free 1", up=None, down=None)
            free2 = await lab.add_host("free 2", up=None, down=None)
            sent_before = (await lab.link_bytes())["capped up"][0]
            up, down = await asyncio.gather(
                _rate(capped_up, free1, 3.0), _rate(free2, capped_down, 3.0)
            )
            frames = (await lab.link_bytes())["capped up"][0] - sent_before
            unshaped = await _rate(free1, free2, 1.0)
            print(f"cap {MiB} B/s: upload {up:.0f}, download {down:.0f}; unshaped {unshaped:.0f}")
            for rate in (up, down):
                assert 0.8 * MiB <= rate <= 1.1 * MiB
            # the kernel counted every frame: TCP data plus its headers, at most the cap
            assert 3.0 * up < frames < 1.1 * MiB * 4.0
            assert unshaped > 10 * MiB

    asyncio.run(main())


def test_close_removes_everything_also_after_an_exception(root_lab: None) -> None:
    async def main() -> None:
        lab = NetLab()
        async with lab:
            host = await lab.add_host("a", up=MiB, down=MiB)
            assert await _ours(lab.prefix) == sorted([lab.uplink, lab.switch, host.netns])
        assert await _ours(lab.prefix) == []
        await lab.close()  # again: nothing to do, no error

        other = NetLab()
        with pytest.raises(RuntimeError, match="inside"):
            async with other:
                await asyncio.gather(
                    *(other.add_host(f"h{i}", up=MiB, down=None) for i in range(4))
                )
                raise RuntimeError("inside the lab")
        assert await _ours(other.prefix) == []

    asyncio.run(main())


def test_close_runs_to_its_end_however_often_it_is_cancelled(root_lab: None) -> None:
    async def main() -> None:
        lab = NetLab()
        await asyncio.gather(*(lab.add_host(f"h{i}", up=MiB, down=None) for i in range(6)))
        closing = asyncio.ensure_future(lab.close())
        for _ in range(3):
            await asyncio.sleep(0)  # let it run to its next await, then cancel it there
            closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        assert await _ours(lab.prefix) == []  # removed before the cancellation came through
        await lab.close()

    asyncio.run(main())


def test_a_failed_step_is_one_clear_line_and_is_cleaned_up(root_lab: None) -> None:
    async def main() -> None:
        lab = NetLab()
        subprocess.run(["ip", "netns", "add", f"{lab.prefix}-1"], check=True, timeout=WAIT)
        async with lab:
            with pytest.raises(CompareError) as caught:
                await lab.add_host("a", up=MiB, down=None)
            message = str(caught.value)
            assert "\n" not in message and "File exists" in message
            assert message.startswith(f"network lab: `ip netns add {lab.prefix}-1` failed")
            assert await _ours(lab.prefix) == [lab.uplink, lab.switch]  # the host is gone
            assert (await lab.add_host("b", up=None, down=None)).netns == f"{lab.prefix}-2"
        assert await _ours(lab.prefix) == []

    asyncio.run(main())


def test_two_labs_at_once_do_not_collide(root_lab: None) -> None:
    async def main() -> None:
        first, second = NetLab(), NetLab()
        try:
            await asyncio.gather(first.start(), second.start())
            assert first.subnet is not None and second.subnet is not None
            assert not first.subnet.overlaps(second.subnet)
            a1, a2 = await asyncio.gather(
                first.add_host("a", up=None, down=None), second.add_host("a", up=None, down=None)
            )
            assert a1.netns != a2.netns and a1.address != a2.address
            async with _echo(a2) as port:
                await first.close()
                assert await _ours(first.prefix) == []
                assert await _ours(second.prefix) != []
                b2 = await second.add_host("b", up=None, down=None)
                assert await _ask(b2, a2.address, port) == f"hello from {b2.address}"
        finally:
            await asyncio.gather(first.close(), second.close())
        assert await _ours(second.prefix) == []

    asyncio.run(main())


def test_a_swarm_child_started_through_argv_reports_on_its_status_fd(root_lab: None) -> None:
    """As compare starts its children: ``python -m swarm -q CMD ... --status-fd N``, N a pipe
    that ``ip netns exec`` passes on; the tracker listens on its host's address, and another
    host reaches it."""

    async def main() -> None:
        async with NetLab() as lab:
            there, here = await asyncio.gather(
                lab.add_host("tracker", up=None, down=None), lab.add_host("peer", up=MiB, down=MiB)
            )
            read_fd, write_fd = os.pipe()
            cmd = [sys.executable, "-m", "swarm", "-q", "tracker", "--host", there.address]
            cmd += ["--port", "0", "--no-udp", "--status-fd", str(write_fd)]
            try:
                proc = await asyncio.create_subprocess_exec(
                    *there.argv(*cmd),
                    pass_fds=(write_fd,),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    cwd=ROOT,
                )
            finally:
                os.close(write_fd)
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=MAX_LINE)
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0)
            )
            try:
                async with asyncio.timeout(WAIT):
                    status = decode(await reader.readline())
                assert status.event is Event.LISTENING
                url = status.urls[0]
                assert url.startswith(f"http://{there.address}:{status.port}/")
                get = "import sys, urllib.request as u\n"
                get += "print(u.urlopen(sys.argv[1], timeout=5).status)"
                page = url.rsplit("/", 1)[0] + "/"
                proc2, line = await _start(*here.argv(sys.executable, "-c", get, page))
                await _finish(proc2)
                assert line == "200"
            finally:
                proc.send_signal(signal.SIGTERM)
                _, err = await _finish(proc)
                transport.close()
            assert proc.returncode == 0, err

    asyncio.run(main())


# A lab in a process of its own, run as compare runs (SIGINT and SIGTERM cancel its task):
# it prints its prefix, then a line per host as it adds N of them, then "ready".
HOLDER = r"""
import asyncio, sys
from swarm.cli.running import INTERRUPTED, run_until_signal
from swarm.compare.netlab import NetLab

async def main(stop):
    async def work():
        async with NetLab() as lab:
            print(lab.prefix, flush=True)
            for i in range(int(sys.argv[1])):
                await lab.add_host(f"h{i}", up=1 << 20, down=1 << 20)
                print(f"host {i}", flush=True)
            print("ready", flush=True)
            await asyncio.Event().wait()
    task = asyncio.ensure_future(work())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return INTERRUPTED

raise SystemExit(run_until_signal(main))
"""


@contextlib.asynccontextmanager
async def _holder(hosts: int, line: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A holder of *hosts* hosts, once it has printed *line*; killed and swept at the end if
    the test has not ended it."""
    proc, prefix = await _start(sys.executable, "-c", HOLDER, str(hosts))
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(WAIT):
            while (await proc.stdout.readline()).decode().strip() != line:
                assert not proc.stdout.at_eof(), "the holder ended early"
        yield proc, prefix
    finally:
        await _finish(proc, kill=True)
        await NetLab.sweep(prefix)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_in_the_middle_of_setup_still_removes_everything(
    root_lab: None, sig: signal.Signals
) -> None:
    async def main() -> None:
        async with _holder(200, "host 2") as (proc, prefix):
            assert await _ours(prefix) != []
            proc.send_signal(sig)  # while it makes host 3
            _, err = await _finish(proc)
            assert proc.returncode == 128 + sig, err
            assert await _ours(prefix) == []

    asyncio.run(main())


def test_sweep_removes_what_a_killed_run_left_and_only_that(root_lab: None) -> None:
    async def main() -> None:
        async with NetLab() as bystander:
            await bystander.add_host("a", up=None, down=None)
            async with _holder(2, "ready") as (proc, prefix):
                # SIGKILL: no cleanup at all (and no ip command of its own left running)
                await _finish(proc, kill=True)
                left = await _ours(prefix)
                assert {f"{prefix}-gw", f"{prefix}-sw", f"{prefix}-1", f"{prefix}-2"} == set(left)
                assert prefix in await NetLab.stale()
                assert bystander.prefix not in await NetLab.stale()  # its process lives
                assert await NetLab.sweep(prefix) == sorted(set(left))
                assert await _ours(prefix) == []
                assert await _ours(bystander.prefix) != []

    asyncio.run(main())
