"""The commands a :class:`~swarm.compare.netlab.NetLab` runs (``ip``, ``tc``) and the
machine-wide lock under which a lab takes its subnet."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from swarm.errors import CompareError

COMMAND_TIMEOUT = 30.0  # seconds one ip or tc command may take
LOCK_TIMEOUT = 60.0  # seconds to wait for another lab to take its subnet


async def run(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    """Run one command within :data:`COMMAND_TIMEOUT` and return its output;
    :class:`CompareError` if it fails (with *check*), cannot start or takes too long."""
    shown = " ".join(argv)
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C meant for compare cannot cut a cleanup short
            )
            try:
                out, err = await proc.communicate(None if stdin is None else stdin.encode())
            except BaseException:  # the deadline, or a cancellation: end it by its PID
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
                raise
    except TimeoutError:
        raise CompareError(f"network lab: `{shown}` took over {COMMAND_TIMEOUT:g} s") from None
    except OSError as exc:
        raise CompareError(f"network lab: cannot run `{shown}`: {exc.strerror}") from None
    if check and proc.returncode != 0:
        why = explain(err.decode(errors="replace"), proc.returncode or 0)
        raise CompareError(f"network lab: `{shown}` failed: {why}")
    return out.decode(errors="replace")


def explain(stderr: str, code: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return "; ".join(lines) if lines else f"exit code {code}"


async def remove(links: list[str], spaces: list[str]) -> None:
    """Delete links (a veth takes its peer along), then namespaces. Some may be gone already
    (a veth goes with either end's namespace): errors are let be, and the caller checks what
    is left by listing."""
    script = "".join(f"link del dev {n}\n" for n in links)
    script += "".join(f"netns del {n}\n" for n in spaces)
    await run("ip", "-force", "-b", "-", stdin=script, check=False)


async def names(pattern: re.Pattern[str]) -> tuple[list[str], list[str]]:
    """The root namespace's links and the named namespaces that *pattern* matches whole."""
    links = json.loads(await run("ip", "-j", "link", "show") or "[]")
    spaces = (await run("ip", "netns", "list")).splitlines()
    return (
        [n for link in links if pattern.fullmatch(n := str(link["ifname"]))],
        [n for line in spaces if line.strip() and pattern.fullmatch(n := line.split()[0])],
    )


async def taken_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 route (all tables) and address of the root namespace, as networks."""
    routes = json.loads(await run("ip", "-j", "-4", "route", "show", "table", "all") or "[]")
    links = json.loads(await run("ip", "-j", "-4", "addr", "show") or "[]")
    found = [str(r.get("dst", "default")) for r in routes]
    found += [f"{a['local']}/{a['prefixlen']}" for x in links for a in x.get("addr_info", [])]
    nets = []
    for net in found:
        with contextlib.suppress(ValueError):  # "default", or an unknown form
            nets.append(ipaddress.IPv4Network(net, strict=False))
    return nets


@contextlib.asynccontextmanager
async def subnet_lock() -> AsyncIterator[None]:
    """Hold the machine-wide lock under which a lab picks its subnet and takes it."""
    folder = Path("/run/lock")
    if not folder.is_dir():
        folder = Path(tempfile.gettempdir())
    fd = os.open(folder / "swarm-netlab.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    why = f"another lab held {folder}/swarm-netlab.lock for {LOCK_TIMEOUT:g} s"
                    raise CompareError(f"network lab: {why}") from None
                await asyncio.sleep(0.02)
        yield
    finally:
        os.close(fd)  # and the lock with it
