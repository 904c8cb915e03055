"""A real ``floy serve`` process over a test installation, with TLS from the test PKI.

:func:`start_server` runs the ``floy`` console script (the one the README documents) with
the installation's settings in its environment, on a free loopback port announced on
stderr, and tokens made through the same :class:`TokenFile` that ``floy token add`` uses.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from orchestrator.service.tokens import TokenFile
from tests.helpers.floyenv import FloyEnv
from tests.helpers.wait import wait_until

FLOY = Path(sys.executable).parent / "floy"
_LISTENING = re.compile(r"listening on (https?://\S+) ")


@dataclass
class FloyServer:
    """A running ``floy serve``: its URL, the CA to trust, its tokens by role."""

    url: str
    ca_file: Path
    env: FloyEnv
    process: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def token_file(self) -> TokenFile:
        return TokenFile(self.env.home / "tokens.yml")

    def add_token(self, name: str, role: str, instance: str = "") -> str:
        """A new token's secret (the running server sees it from its next call on)."""
        return self.token_file.add(name, role, instance)[1]

    def heartbeat_token(self, instance_id: str) -> str:
        """A heartbeat token bound to ``instance_id`` (made once, then reused)."""
        key = f"heartbeat:{instance_id}"
        if key not in self.tokens:
            self.tokens[key] = self.add_token(f"beat-{instance_id}", "heartbeat", instance_id)
        return self.tokens[key]

    def client(self, role: str = "deployer", token: str | None = None,
               timeout: float = 60.0) -> httpx.Client:
        """An HTTP client trusting the test CA, sending the token of ``role``
        (``role=""`` sends none)."""
        secret = token if token is not None else self.tokens.get(role, "")
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        trust = ssl.create_default_context(cafile=str(self.ca_file))
        return httpx.Client(base_url=self.url, verify=trust, headers=headers, timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 10 s; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def server_environ(env: FloyEnv) -> dict[str, str]:
    """The environment that gives a ``floy`` process this installation's settings."""
    s = env.settings
    environ = {**os.environ, "FLOY_HOME": str(env.home), "FLOY_DB_URL": s.db_url,
               "FLOY_INVENTORY_DIR": str(s.inventory_dir),
               "FLOY_LEASE_SECONDS": str(s.lease_seconds)}
    if s.ca_bundle:
        environ["FLOY_CA_BUNDLE"] = str(s.ca_bundle)
    return environ


def start_server(env: FloyEnv, pki: object, *extra: str) -> FloyServer:
    """``floy serve --port 0`` over TLS with a read and a deployer token; waits until it
    listens (fails with its log if it exits first)."""
    tokens = TokenFile(env.home / "tokens.yml")
    secrets = {role: tokens.add(f"test-{role}", role)[1] for role in ("read", "deployer")}
    log = env.home / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(FLOY), "serve", "--port", "0", "--cert", str(pki.cert_chain),  # type: ignore[attr-defined]
             "--key", str(pki.key), *extra],  # type: ignore[attr-defined]
            env=server_environ(env), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)

    def listening() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"floy serve exited {process.returncode}:\n"
                                 f"{log.read_text(errors='replace')}")
        found = _LISTENING.search(log.read_text(errors="replace"))
        return found.group(1) if found else None

    url = wait_until(listening, 30, "floy serve to listen")
    server = FloyServer(url=url, ca_file=Path(pki.ca_bundle), env=env,  # type: ignore[attr-defined]
                        process=process, log=log, tokens=secrets)
    with server.client("") as c:
        wait_until(lambda: c.get("/healthz").status_code == 200, 30, "/healthz")
    return server
