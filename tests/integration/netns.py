"""Simulated machines in network namespaces, for the network-fault tier
(tests/integration/test_network_faults.py).

Each :class:`Machine` is a network namespace joined to the root namespace by a veth pair on a
/30 of its own: ``10.213.S.1`` on the root side, ``10.213.S.2`` inside, where ``S`` is a slot
claimed atomically (so parallel test processes never share one). It runs a real OpenSSH
server on ``10.213.S.2:22``, built from :class:`tests.integration.sshd.Sshd` (keys, config,
stop) by composition; the controller (floy, Ansible, ssh) stays in the root namespace and
reaches the machine only through the veth. The instance directories stay on the shared
filesystem, so a test reads their disk state directly.

Addresses never leave this machine: no namespace has a default route, forwarding is not
touched, and every slot holds a blackhole route for its /30 in the root namespace (metric
4242, under the veth's connected route) so that traffic for a machine whose link is gone can
never fall back to the default route.

The package server. A deployment has one package URL for all its instances, and a machine
reaches the root namespace only through its own /30, so a second package server bound to one
machine's root-side address would serve that machine alone. Instead each machine gets a
:class:`Relay`: a socket listening on ``127.0.0.1:<port of the session package server>``
*inside* the namespace (created by a thread that entered it with ``setns``), relayed by this
process to the session's server on 127.0.0.1. The session's URLs and its certificate (issued
for 127.0.0.1) work unchanged on every machine, TLS stays end to end (the relay sees only
bytes), and the relay never crosses the veth: a fault cuts the controller's path to a
machine, not the machine's path to its package repository, which is another network in
real life.

Faults this kernel can make (checked here: no ``sch_netem``, no iptables or nft):

- :meth:`Machine.partition` ``"drop"``: a blackhole route inside the machine for the
  controller's address. Everything the machine sends to the controller vanishes, with no ICMP
  and no reset: new TCP connections hang until the client's ConnectTimeout, established ones
  go silent until keepalives give up, like a real partition. :meth:`Machine.heal` removes it
  and the same TCP connections carry on.
- :meth:`Machine.partition` ``"link"``: the machine's end of the veth down: ARP fails and
  the controller gets "No route to host" after about 3 s, as from a powered-off host on the
  same LAN. The root end (and its route) stay, so nothing is rerouted.
- :meth:`Machine.shape`: a ``tbf`` rate limit on both ends of the veth: latency that grows
  with the bytes in flight (queueing), not a per-packet delay.
- :class:`DelayProxy`: a userspace TCP proxy on the SSH path that holds every chunk for a
  fixed time in each direction: a real round-trip latency without a bandwidth limit.
- Packet loss cannot be simulated here: it needs netem (or iptables/nft ``statistic``
  matches), none of which exist on this kernel. Nothing in this tier pretends to.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.integration.sshd import SSHD, Sshd, alive, cmdline, keygen, live_pids

T = TypeVar("T")

IP = shutil.which("ip") or "/usr/sbin/ip"
TC = shutil.which("tc") or "/usr/sbin/tc"
NETNS_DIR = Path("/run/netns")
PREFIX = "10.213"
SLOTS = range(1, 255)
# Under the connected route of a machine's veth (metric 0): used only once that is gone.
GUARD_METRIC = 4242
SSH_PORT = 22
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run an iproute2 command; raise with its stderr when ``check`` and it fails."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


@functools.cache
def _netns_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None (probed once per process)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add, veth pairs)"
    if not os.access(IP, os.X_OK):
        return f"{IP} is missing: install iproute2"
    probe = f"floy-probe-{os.getpid()}"
    made = sh(IP, "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` is unavailable here: {made.stderr.strip()}"
    sh(IP, "netns", "delete", probe, check=False)
    return None


def require_netns() -> None:
    """Skip the test, with the reason, when namespaces cannot be made (not root, no ip)."""
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)


def in_netns(netns: Path, fn: Callable[[], T], timeout: float = 30.0) -> T:
    """Call ``fn`` in a short-lived thread that entered the network namespace ``netns``.

    ``setns(CLONE_NEWNET)`` switches only the calling thread, and sockets keep the namespace
    they were created in, so a listener made here serves from inside the namespace while
    this process's other threads stay in the root namespace.
    """
    box: dict[str, object] = {}

    def body() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"in-{netns.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{fn!r} in {netns.name} did not return within {timeout} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def netns_inode(path: Path) -> int:
    """The inode that names a network namespace (a /run/netns file or /proc/PID/ns/net)."""
    return os.stat(path).st_ino


# -- TCP plumbing -------------------------------------------------------------------------


class _Forwarder:
    """Accepts on ``listener`` and forwards each connection to ``target``, each chunk held
    ``delay`` seconds in each direction (0: a plain relay). Counts the bytes it carried."""

    def __init__(self, listener: socket.socket, target: tuple[str, int], delay: float,
                 name: str) -> None:
        self.listener = listener
        self.target = target
        self.delay = delay
        self.bytes = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=name, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                self._pump(src, dst)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy ``src`` to ``dst`` through a queue, each chunk sent ``delay`` after it came."""
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def read() -> None:
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                chunks.put((time.monotonic() + self.delay, data))
                if not data:
                    return
                with self._lock:
                    self.bytes += len(data)

        def write() -> None:
            while True:
                due, data = chunks.get()
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                try:
                    if not data:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(data)
                except OSError:
                    return

        for fn in (read, write):
            threading.Thread(target=fn, name=f"{self._thread.name}-pump", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._thread.join(5)


class Relay(_Forwarder):
    """A listener inside a namespace relayed to an address of the root namespace."""

    def __init__(self, netns: Path, listen: tuple[str, int], target: tuple[str, int]) -> None:
        listener = in_netns(netns, lambda: socket.create_server(listen, backlog=64))
        super().__init__(listener, target, 0.0, f"relay-{netns.name}")


class DelayProxy(_Forwarder):
    """A TCP proxy on 127.0.0.1 (root namespace) to ``target``, adding ``delay`` seconds
    each way to every chunk: a round trip through it costs ``2 * delay`` more."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        super().__init__(listener, target, delay, f"delay-{target[0]}")


# -- one machine --------------------------------------------------------------------------


class Machine:
    """One simulated machine: a namespace, its veth pair and /30, its sshd."""

    def __init__(self, slot: int, workdir: Path, owner: int | None = None) -> None:
        self.slot = slot
        # The owner's PID in the name: a machine whose test process died can be found.
        self.netns = f"floy-nf-{owner or os.getpid()}-{slot}"
        self.netns_path = NETNS_DIR / self.netns
        self.root_if, self.ns_if = f"fnf{slot}r", f"fnf{slot}n"
        self.subnet = f"{PREFIX}.{slot}.0/30"
        self.root_addr, self.addr = f"{PREFIX}.{slot}.1", f"{PREFIX}.{slot}.2"
        self.workdir = workdir
        self.sshd: Sshd | None = None
        self.relays: list[Relay] = []
        self.partitioned: str | None = None
        self.shaped = False

    # the namespace ------------------------------------------------------------------------
    @classmethod
    def claim(cls, workdir: Path) -> Machine:
        """Create a machine on the first free slot. The slot's guard route is the claim:
        ``ip route add`` is exclusive, so two processes never get the same addresses."""
        for slot in SLOTS:
            machine = cls(slot, workdir / f"m{slot}")
            guard = sh(IP, "route", "add", "blackhole", machine.subnet, "metric",
                       str(GUARD_METRIC), check=False)
            if guard.returncode != 0:
                continue  # taken by another process (or left by a crashed one)
            try:
                machine._create()
            except Exception:
                machine.destroy()
                raise
            return machine
        raise RuntimeError(f"no free slot in {PREFIX}.0.0/16 (stale guard routes? "
                           f"`ip route show type blackhole`)")

    def _create(self) -> None:
        sh(IP, "netns", "add", self.netns)
        sh(IP, "-n", self.netns, "link", "set", "lo", "up")
        sh(IP, "link", "add", self.root_if, "type", "veth", "peer", "name", self.ns_if)
        sh(IP, "link", "set", self.ns_if, "netns", self.netns)
        # IPv4 only on the link: no link-local IPv6 routes, router solicitations or MLD.
        self._no_ipv6()
        sh(IP, "addr", "add", f"{self.root_addr}/30", "dev", self.root_if)
        sh(IP, "-n", self.netns, "addr", "add", f"{self.addr}/30", "dev", self.ns_if)
        sh(IP, "link", "set", self.root_if, "up")
        sh(IP, "-n", self.netns, "link", "set", self.ns_if, "up")
        self.check_routes()

    def _no_ipv6(self) -> None:
        root_side = Path(f"/proc/sys/net/ipv6/conf/{self.root_if}/disable_ipv6")
        if root_side.exists():
            root_side.write_text("1\n")
        inside = "/proc/sys/net/ipv6/conf/{}/disable_ipv6"
        # /proc/sys/net files belong to the namespace of whoever opens them.
        in_netns(self.netns_path, lambda: [
            Path(inside.format(dev)).write_text("1\n") for dev in ("all", "default", "lo",
                                                                   self.ns_if)
            if Path(inside.format(dev)).exists()])

    def check_routes(self) -> None:
        """Fail unless the controller's route to the machine is its veth, and the machine
        has no route but its /30 and loopback (so it can reach nothing else)."""
        route = sh(IP, "route", "get", self.addr).stdout
        if f"dev {self.root_if} " not in route:
            raise AssertionError(f"route to {self.addr} is not {self.root_if}: {route!r}")
        inside = sh(IP, "-n", self.netns, "-j", "route", "show", "table", "all").stdout
        for entry in json.loads(inside or "[]"):
            if entry.get("table") == "local" or entry.get("type") == "blackhole":
                continue  # its own addresses; a partition
            if entry.get("dst") != self.subnet:
                raise AssertionError(f"unexpected route in {self.netns}: {entry}")

    def pids(self) -> list[int]:
        """Every live process in this machine's network namespace."""
        try:
            mine = netns_inode(self.netns_path)
        except OSError:
            return []
        found = []
        for pid, _, _ in live_pids():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{pid}/ns/net").st_ino == mine:
                    found.append(pid)
        return found

    def destroy(self) -> None:
        """Stop everything the machine runs, remove the veth pair, the namespace and the
        guard route. Safe to call more than once and after a partial create."""
        for relay in self.relays:
            relay.close()
        self.relays.clear()
        if self.sshd is not None:
            with contextlib.suppress(Exception):
                self.sshd.stop()
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            pids = self.pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while any(alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.05)
        sh(IP, "link", "delete", self.root_if, check=False)  # takes its peer with it
        sh(IP, "netns", "delete", self.netns, check=False)
        sh(IP, "route", "delete", "blackhole", self.subnet, "metric", str(GUARD_METRIC),
           check=False)

    # its sshd -----------------------------------------------------------------------------
    def start_sshd(self, client_public_key: str, timeout: float = 15.0) -> Sshd:
        """Run sshd in the namespace on ``addr:22``, trusting ``client_public_key``."""
        server = self.sshd or Sshd(self.workdir / "sshd", port=SSH_PORT)
        self.sshd = server
        server.authorized_keys.write_text(client_public_key + "\n")
        text = server.config.read_text().replace("ListenAddress 127.0.0.1",
                                                 f"ListenAddress {self.addr}")
        server.config.write_text(text)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        sh(IP, "netns", "exec", self.netns, str(SSHD), "-t", "-f", str(server.config))
        # `ip netns exec` execs sshd: the child is sshd itself, so Sshd.stop() works on it.
        server.proc = subprocess.Popen(
            [IP, "netns", "exec", self.netns, str(SSHD), "-D", "-f", str(server.config),
             "-E", str(server.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if server.proc.poll() is not None:
                raise RuntimeError(f"sshd in {self.netns} exited: {server.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    (self.addr, SSH_PORT), timeout=1) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    return server
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd in {self.netns} not answering: {server.log_tail()}")
            time.sleep(0.05)

    def known_hosts_line(self, host: str | None = None, port: int = SSH_PORT) -> str:
        """A known_hosts line pinning this machine's host key under ``host:port``."""
        assert self.sshd is not None
        name = host or self.addr
        where = name if port == SSH_PORT else f"[{name}]:{port}"
        return f"{where} {self.sshd.host_public_key}"

    def session_commands(self) -> list[str]:
        """``pid comm: cmdline`` of what sshd sessions run in the machine (the module, a
        restart command; not sshd itself, nor the hello apps meant to outlive a release)."""
        lines = []
        for pid in self.pids():
            cmd = cmdline(pid)
            if cmd.startswith(str(SSHD)) or "sshd:" in cmd or "app.py" in cmd or not cmd:
                continue
            lines.append(f"{pid}: {cmd[:200]}")
        return lines

    def serve_port(self, port: int) -> None:
        """Make 127.0.0.1:``port`` of the root namespace answer on 127.0.0.1:``port``
        inside the machine (the package server; see the module docstring)."""
        self.relays.append(Relay(self.netns_path, ("127.0.0.1", port), ("127.0.0.1", port)))

    def http_get(self, port: int, path: str = "/health", timeout: float = 3) -> str | None:
        """GET http://127.0.0.1:port/path from inside the machine; None if nothing answers."""

        def get() -> str | None:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
                    return str(resp.read().decode())
            except OSError:
                return None

        return in_netns(self.netns_path, get, timeout=timeout + 5)

    # faults -------------------------------------------------------------------------------
    def partition(self, kind: str = "drop") -> None:
        """Cut the controller off (``drop``: silent loss; ``link``: the link goes down)."""
        if kind == "drop":
            sh(IP, "-n", self.netns, "route", "add", "blackhole", f"{self.root_addr}/32")
        elif kind == "link":
            sh(IP, "-n", self.netns, "link", "set", self.ns_if, "down")
        else:
            raise ValueError(f"unknown partition kind {kind!r}")
        self.partitioned = kind
        self.check_routes()

    def heal(self) -> None:
        """Undo :meth:`partition`."""
        if self.partitioned == "drop":
            sh(IP, "-n", self.netns, "route", "delete", "blackhole", f"{self.root_addr}/32")
        elif self.partitioned == "link":
            sh(IP, "-n", self.netns, "link", "set", self.ns_if, "up")
        self.partitioned = None
        self.check_routes()

    def shape(self, rate: str, burst: str = "16kb", latency: str = "1s") -> None:
        """Rate-limit both directions of the link with tbf (``rate`` as tc spells it)."""
        for ns in (None, self.netns):
            dev = self.ns_if if ns else self.root_if
            where = ["-n", ns] if ns else []
            sh(TC, *where, "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate,
               "burst", burst, "latency", latency)
        self.shaped = True

    def shaping_stats(self) -> dict[str, int]:
        """Bytes sent and times the rate limit held packets back, on the root side."""
        out = sh(TC, "-s", "-j", "qdisc", "show", "dev", self.root_if).stdout
        for qdisc in json.loads(out or "[]"):
            if qdisc.get("kind") == "tbf":
                return {"bytes": int(qdisc.get("bytes", 0)),
                        "overlimits": int(qdisc.get("overlimits", 0))}
        return {"bytes": 0, "overlimits": 0}


# -- a fleet of machines ------------------------------------------------------------------


class Fleet:
    """The machines of one test, one client key they all trust, one known_hosts."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.machines: list[Machine] = []
        self.client_key = self.dir / "id_ed25519"
        self.client_public_key = keygen(self.client_key, "floy-netns-client")
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text("")

    def add(self, count: int, serve_ports: tuple[int, ...] = ()) -> list[Machine]:
        """Create ``count`` machines, start their sshd, relay ``serve_ports`` into them."""
        made = []
        for _ in range(count):
            machine = Machine.claim(self.dir)
            self.machines.append(machine)
            machine.start_sshd(self.client_public_key)
            for port in serve_ports:
                machine.serve_port(port)
            self.pin(machine.known_hosts_line())
            made.append(machine)
        return made

    def pin(self, line: str) -> None:
        """Add a known_hosts line."""
        with self.known_hosts.open("a") as out:
            out.write(line + "\n")

    def close(self) -> None:
        """Destroy every machine (each even if another one fails)."""
        errors = []
        for machine in reversed(self.machines):
            try:
                machine.destroy()
            except Exception as exc:  # keep cleaning the others
                errors.append(f"{machine.netns}: {exc}")
        self.machines.clear()
        if errors:
            raise RuntimeError("cleanup failed: " + "; ".join(errors))


def reap_stale(workdir: Path) -> list[str]:
    """Destroy the machines of test processes that died without cleaning up (SIGKILL, a
    crash): their namespace names carry the owner's PID. Returns their names."""
    reaped = []
    for path in NETNS_DIR.glob("floy-nf-*-*") if NETNS_DIR.is_dir() else []:
        _, _, owner, slot = path.name.rsplit("-", 3)
        if not (owner.isdigit() and slot.isdigit()) or alive(int(owner)):
            continue
        Machine(int(slot), workdir, owner=int(owner)).destroy()
        reaped.append(path.name)
    return reaped


@contextlib.contextmanager
def fleet_of(workdir: Path) -> Iterator[Fleet]:
    """A :class:`Fleet` destroyed at the end of the block, whatever happened in it."""
    require_netns()
    reap_stale(workdir)
    fleet = Fleet(workdir)
    try:
        yield fleet
    finally:
        fleet.close()


def tcp_clients_to(addr: str, port: int) -> list[int]:
    """PIDs (in this namespace) holding a TCP connection to ``addr:port``: ssh clients and
    ControlPersist masters talking to a machine's sshd."""
    a, b, c, d = (int(x) for x in addr.split("."))
    remote = f"{d:02X}{c:02X}{b:02X}{a:02X}:{port:04X}"
    inodes = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2] == remote and fields[3] != "0A" and fields[9] != "0":
                inodes.add(f"socket:[{fields[9]}]")
    pids = []
    for pid, _, _ in live_pids():
        with contextlib.suppress(OSError):
            fd_dir = f"/proc/{pid}/fd"
            if any(os.readlink(f"{fd_dir}/{fd}") in inodes for fd in os.listdir(fd_dir)):
                pids.append(pid)
    return pids
