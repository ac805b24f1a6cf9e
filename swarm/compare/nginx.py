"""``swarm compare --central nginx``: the central mode served by Debian's nginx, the server
people actually run, so that the baseline is not only swarm's own.

compare starts ``nginx -p PREFIX -c nginx.conf`` in a temporary prefix of its own: listening
on one address and port, its pid, logs and temporary folders inside the prefix, ``daemon
off`` and ``master_process off`` (one process, compare's child, stopped by its PID), run as
the current user. The file is reached through symlinks in the prefix's ``www`` folder, so no
file name is ever written into the configuration.

The cap. nginx has no cap on a whole server's upload: ``limit_rate`` is per request (one
download is one request). So each N gets a folder of its own, ``/nN/FILE``, with a
``limit_rate`` of about u_s / N: the N downloaders of the central phase start together and each
gets its fair share of u_s, so the server's total is u_s while all are running, as the bound
N F / u_s assumes (swarm's own server shares one token bucket between its connections: a
download that ends early leaves its share to the others, which nginx cannot do; with all N
starting together none ends early). nginx paces a request by bursts: it sends what its
limit allows (rate x (whole seconds since the request began + 1) bytes, so a second's worth at
once), then waits as long as that burst takes at the rate. The last burst's wait does not
count, so a copy at rate r ends at ceil(F / r) - 1 s, a second before F / r (measured, 1 MiB to
2 at 1 MiB/s: 1.06 s at u_s / N against a bound of 2 s). :func:`request_rate` gives that second
back: limit_rate = F u_s / (N F + u_s), so F / r = N F / u_s + 1 and the copies end at
ceil(N F / u_s), less than a second after the bound (measured: 2.06 s for a bound of 2 s,
5.03-5.07 s for 4 s with a rate that took off 1.5 s instead). Where the socket's buffer holds
less than a second's worth the bursts are smaller and the copies end later, still within a
second of F / r. But the whole seconds are nginx's clock's, not the request's: a request made
late in a second whose timer then fires late past the next one gets two seconds' worth at
once, and ends up to a second early (seen once on a loaded 2-core machine: 3.03 s for a bound
of 4 s). So the central phase's downloaders are let go early in a second of the wall clock
(:func:`wait_for_second`): a request then made within the first third of a second needs a
timer two thirds of a second late, not a few milliseconds, to be given the extra second.

In the network lab (``--lab netns``) the kernel caps the central host's link at u_s for all
its connections together, so nginx runs uncapped there (``/FILE``), and the same nginx is the
hybrid mode's web seed; without the lab a per-connection cap cannot stand for a shared u_s to
downloaders that come and go, so the hybrid mode's web seed is swarm's own server (the table
says which ran).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import urllib.parse
from pathlib import Path

from swarm.compare.children import terminate
from swarm.compare.netlab import Host
from swarm.errors import CompareError, UsageError

START_TIMEOUT = 10.0  # seconds nginx may take to listen (its pid file appears once it does)
STOP_TIMEOUT = 10.0  # seconds from SIGTERM to SIGKILL
LAB_PORT = 8080  # inside a lab host's own network namespace, nothing else listens there
INSTALL_HINT = "Debian: apt-get install nginx-light"


YOUNG_SECOND = 0.25  # seconds into a wall-clock second that still count as its start
SECOND_MARGIN = 0.02  # and how far past a whole second the wait for the next one ends


def wait_for_second(now: float) -> float:
    """Seconds to wait from wall-clock time *now* (``time.time()``) so that what starts then
    starts early in a second of nginx's clock (which counts the wall clock's whole seconds):
    none if *now* is early in one already, else until just after the next."""
    into = now % 1.0
    return 0.0 if into < YOUNG_SECOND else 1.0 - into + SECOND_MARGIN


def find_nginx() -> str:
    """The nginx binary (PATH, then /usr/sbin, outside root's PATH); UsageError if none."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise UsageError(f"--central nginx: nginx is not installed ({INSTALL_HINT})")
    return found


def request_rate(file_size: int, n: int, server_rate: int) -> int:
    """nginx's ``limit_rate`` for one of *n* downloads of *file_size* bytes at once to make
    *server_rate* in all (see the module's docstring: nginx's copy ends a second before
    F / rate, so that second is given back)."""
    return max(1, file_size * server_rate // (n * file_size + server_rate))


def config(prefix: Path, address: str, port: int, rates: dict[int, int], built: str) -> str:
    """nginx.conf for a server on *address*:*port* of the files in ``PREFIX/www``, folder
    ``nN`` capped at ``rates[N]`` bytes/s a request; *built*: ``nginx -V``'s output (which
    temporary paths this build has)."""
    tmp = prefix / "tmp"
    temp_paths = [f"client_body_temp_path {tmp}/body;"]
    for module in ("proxy", "fastcgi", "uwsgi", "scgi"):
        if f"--without-http_{module}_module" not in built:
            temp_paths.append(f"{module}_temp_path {tmp}/{module};")
    host = f"[{address}]" if ":" in address else address
    locations = "".join(
        f"        location /n{n}/ {{ limit_rate {rate}; }}\n" for n, rate in sorted(rates.items())
    )
    lines = "\n    ".join(temp_paths)
    return f"""# swarm compare --central nginx: written for one run, removed after it
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {prefix}/access.log;
    {lines}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    server {{
        listen {host}:{port};
        root {prefix}/www;
        autoindex off;
{locations}        location / {{ }}
    }}
}}
"""


class Nginx:
    """One nginx process serving one file (see the module's docstring)."""

    def __init__(self, proc: asyncio.subprocess.Process, prefix: Path, base: str, name: str):
        self.proc = proc
        self.prefix = prefix
        self._base = base
        self._quoted = urllib.parse.quote(name, safe="")

    def url(self, n: int | None = None) -> str:
        """The file's URL, capped for N downloaders (folder ``nN``), or uncapped (None)."""
        return self._base + (f"n{n}/" if n is not None else "") + self._quoted

    @classmethod
    async def start(
        cls,
        file: Path,
        prefix: Path,
        rates: dict[int, int],
        address: str = "127.0.0.1",
        host: Host | None = None,
    ) -> Nginx:
        """Start nginx serving *file* from *prefix* (made here) on *address*, in the network
        namespace of *host* when given; ``/nN/FILE`` capped at ``rates[N]`` a request."""
        binary = find_nginx()
        built = await asyncio.to_thread(_version_text, binary)
        www = prefix / "www"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        for folder in [www, *(www / f"n{n}" for n in rates)]:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / file.name).symlink_to(file.resolve())
        last = ""
        for _attempt in range(3):  # a free port found on loopback may be taken before nginx
            port = LAB_PORT if host is not None else _free_port(address)
            conf = prefix / "nginx.conf"
            conf.write_text(config(prefix, address, port, rates, built))
            (prefix / "nginx.pid").unlink(missing_ok=True)
            argv = [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
            if host is not None:
                argv = host.argv(*argv)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
            server = cls(proc, prefix, f"http://{_url_host(address)}:{port}/", file.name)
            if await server._listening():
                return server
            await server.stop()
            last = server.last_error()
            if "Address already in use" not in last:
                break
        raise CompareError(f"nginx did not start: {last or 'no reason in its error log'}")

    async def _listening(self) -> bool:
        """Whether nginx is up: its pid file appears once it has bound its socket."""
        pid = self.prefix / "nginx.pid"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_TIMEOUT):
                while self.proc.returncode is None:
                    if pid.exists() and pid.read_text().strip():
                        return True
                    await asyncio.sleep(0.02)
        return False

    def last_error(self) -> str:
        """The last line nginx wrote to its error log ('' if none)."""
        try:
            lines = (self.prefix / "error.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return lines[-1].split("] ", 1)[-1] if lines else ""

    async def stop(self) -> None:
        """SIGTERM (nginx's fast shutdown), SIGKILL after :data:`STOP_TIMEOUT`."""
        await terminate(self.proc, STOP_TIMEOUT)


def _version_text(binary: str) -> str:
    try:
        done = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"--central nginx: {binary} -V failed: {exc}") from None
    return done.stderr + done.stdout


def _free_port(address: str) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


__all__ = ["Nginx", "config", "find_nginx", "request_rate"]
