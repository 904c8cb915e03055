"""A real OpenSSH server on 127.0.0.1 for the SSH test tier (tests/integration/test_ssh.py).

:class:`Sshd` generates a host key pair and a client key pair with ``ssh-keygen`` in a
directory of its own, writes an ``sshd_config`` (key authentication only, loopback only, a
free port), runs ``/usr/sbin/sshd -D`` as a child process and writes a ``known_hosts`` with
the host key, so clients can keep strict host key checking on. ``stop()``/``start()`` let a
test take the server down in the middle of a run and bring it back on the same port.

Debian's openssh-server is installed by ``scripts/bootstrap.sh`` when it runs as root.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sample.packages import free_port

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"


def require_sshd() -> None:
    """Skip when sshd is missing and cannot be installed here; fail when it should be."""
    if SSHD.is_file() and os.access(SSHD, os.X_OK):
        return
    if os.geteuid() != 0:
        pytest.skip(f"{SSHD} is absent and we are not root: install openssh-server "
                    "(scripts/bootstrap.sh does it when run as root) to run the SSH tests")
    pytest.fail(f"{SSHD} is absent: run `bash scripts/bootstrap.sh` as root first, it "
                "installs openssh-server")


def keygen(path: Path, comment: str) -> str:
    """Generate an ed25519 key pair at ``path``; returns the public key ``type base64``."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True, capture_output=True, timeout=30)
    kind, key, *_ = path.with_name(path.name + ".pub").read_text().split()
    return f"{kind} {key}"


def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """(state, ppid, comm) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    fields = raw.rpartition(")")[2].split()
    return fields[0], int(fields[1]), comm


def alive(pid: int) -> bool:
    """True if ``pid`` is a live process (not a zombie)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def cmdline(pid: int) -> str:
    """The command line of ``pid`` with spaces for NULs ('' if it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except OSError:
        return ""


def live_pids() -> Iterator[tuple[int, int, str]]:
    """(pid, ppid, comm) of every live (non-zombie) process but this one."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        stat = _proc_stat(int(entry))
        if stat is not None and stat[0] != "Z":
            yield int(entry), stat[1], stat[2]


def descendants(root: int) -> list[tuple[int, str]]:
    """(pid, comm) of every live descendant of ``root``."""
    children: dict[int, list[tuple[int, str]]] = {}
    for pid, ppid, comm in live_pids():
        children.setdefault(ppid, []).append((pid, comm))
    found: list[tuple[int, str]] = []
    todo = [root]
    while todo:
        for pid, comm in children.get(todo.pop(), []):
            found.append((pid, comm))
            todo.append(pid)
    return found


def tcp_clients(port: int) -> list[int]:
    """PIDs holding a TCP connection to 127.0.0.1:``port`` (the client side): ssh clients
    and ControlPersist masters talking to the sshd on that port."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if remote.endswith(f":{port:04X}") and state != "0A" and inode != "0":
                inodes.add(f"socket:[{inode}]")
    pids = []
    for pid, _, _ in live_pids():
        with contextlib.suppress(OSError):
            fd_dir = f"/proc/{pid}/fd"
            if any(os.readlink(f"{fd_dir}/{fd}") in inodes for fd in os.listdir(fd_dir)):
                pids.append(pid)
    return pids


class Sshd:
    """One sshd on 127.0.0.1:<port> with its keys, config, log and known_hosts."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        require_sshd()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.port = port or free_port()
        self.user = "root" if os.geteuid() == 0 else getpass.getuser()
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.host_public_key = keygen(self.host_key, "floy-test-sshd")
        self.client_key = self.dir / "id_ed25519"
        client_public_key = keygen(self.client_key, "floy-test-client")
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_text(client_public_key + "\n")
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_public_key}\n")
        self.config = self.dir / "sshd_config"
        self.log = self.dir / "sshd.log"
        self.pid_file = self.dir / "sshd.pid"
        self.config.write_text(self._config_text())
        self.proc: subprocess.Popen[bytes] | None = None

    def _config_text(self) -> str:
        return "\n".join([
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"AllowUsers {self.user}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            f"PidFile {self.pid_file}",
            "LogLevel VERBOSE",
            # Ansible opens a connection (or a multiplexed session) per host and task:
            # allow plenty for 2-3 parallel hosts and retries.
            "MaxStartups 100:30:200",
            "MaxSessions 100",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "PermitTunnel no",
            "Subsystem sftp internal-sftp",
            "",
        ])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start sshd (on the same port as before) and wait until it accepts connections."""
        if self.running:
            return
        if os.geteuid() == 0:  # sshd's privilege separation directory
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        check = subprocess.run([str(SSHD), "-t", "-f", str(self.config)],
                               capture_output=True, text=True, timeout=30, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"sshd rejects {self.config}: {check.stderr.strip()}")
        self.proc = subprocess.Popen(
            [str(SSHD), "-D", "-f", str(self.config), "-E", str(self.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1) as sock:
                if sock.recv(4).startswith(b"SSH-"):  # the banner: sshd, not a stranger
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd did not accept on port {self.port}: "
                                   f"{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Take the host down: stop the listener and every connection it serves (their
        sshd processes), as a crashed or powered-off host would. Commands that sessions were
        running are left alone, as they would be on a real host; callers clean them up."""
        if self.proc is None:
            return
        listener = self.proc.pid
        sessions = [pid for pid, comm in descendants(listener) if comm.startswith("sshd")]
        for pid in [listener, *sessions]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(pid) for pid in sessions):
            time.sleep(0.05)

    def session_commands(self) -> list[int]:
        """PIDs of the commands sessions of this sshd run or ran (the module, the restart
        command it started, ...), found by the ``SSH_CONNECTION`` environment sshd gives
        them, so also after their session ended. The hello apps, meant to outlive the
        session, are left out."""
        tag = self.session_tag()
        found = []
        for pid, _, comm in live_pids():
            if comm.startswith("sshd"):
                continue
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(v.startswith(b"SSH_CONNECTION=") and v.endswith(tag) for v in env) and (
                    "app.py" not in cmdline(pid)):
                found.append(pid)
        return found

    def session_tag(self) -> bytes:
        """How ``SSH_CONNECTION`` of this server's sessions ends: its address and port."""
        return f" 127.0.0.1 {self.port}".encode()

    def operator_vars(self, root: Path, known_hosts_args: str) -> dict[str, object]:
        """The operator's group_vars for instances under ``root`` reached through this
        server: SSH, key authentication, strict host key checking (pipelining comes from
        playbooks/ansible.cfg)."""
        import sys

        return {
            "ansible_connection": "ssh",
            "ansible_host_key_checking": True,
            "ansible_port": self.port,
            "ansible_user": self.user,
            "ansible_ssh_private_key_file": str(self.client_key),
            "ansible_ssh_common_args": known_hosts_args,
            "ansible_python_interpreter": sys.executable,
            "floy_root": str(root),
            "floy_retry_delay": 0,
        }

    def session_processes(self) -> list[str]:
        """:meth:`session_commands` as ``pid comm: cmdline`` lines."""
        lines = []
        for pid in self.session_commands():
            stat = _proc_stat(pid)
            lines.append(f"{pid} {stat[2] if stat else '?'}: {cmdline(pid)[:200]}")
        return lines

    def kill_session_commands(self, grace: float = 10.0) -> list[str]:
        """SIGTERM what sessions left running (the module then cleans up as on a cancel),
        SIGKILL it after ``grace``; returns what was found, for a report."""
        found = self.session_processes()
        for pid in self.session_commands():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.session_commands() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.session_commands():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return found

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def publickey_logins(self) -> int:
        """How many logins with a public key the log shows."""
        return self.log_text().count(f"Accepted publickey for {self.user} from 127.0.0.1")

    def other_known_hosts(self, name: str) -> Path:
        """A known_hosts file that pins a DIFFERENT host key for this server's address."""
        stranger = keygen(self.dir / f"{name}_key", "not-this-server")
        path = self.dir / f"{name}_known_hosts"
        path.write_text(f"[127.0.0.1]:{self.port} {stranger}\n")
        return path


@contextlib.contextmanager
def running_sshd(workdir: Path) -> Iterator[Sshd]:
    """An sshd started for the duration of the block."""
    server = Sshd(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.kill_session_commands()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """The session's sshd on 127.0.0.1 (one per session: keys, config, a child process)."""
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
