"""``floy serve``: the API and the dashboard under uvicorn, TLS when given a certificate.

Without a certificate the server listens on loopback only, unless the operator says
otherwise (``allow_remote_plaintext``): tokens must not cross a network in clear. The
listening socket is bound here, before uvicorn starts, so that a port in use or a bad
address is one clear error (a :class:`ConfigError`) and port 0 picks a free port that is
then announced.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from orchestrator.errors import ConfigError, ValidationError
from orchestrator.http.app import create_app
from orchestrator.http.auth import Authenticator, FailureLimiter
from orchestrator.service import FloyDeployService
from orchestrator.service.tokens import TokenFile, TokenRegistry

log = logging.getLogger("floy.http")


@dataclass(frozen=True)
class ServeOptions:
    """How ``floy serve`` listens."""

    host: str = "127.0.0.1"
    port: int = 8080
    certfile: Path | None = None
    keyfile: Path | None = None
    tokens_file: Path | None = None  # default: <home>/tokens.yml
    allow_remote_plaintext: bool = False
    max_auth_failures: int = 10  # per client, per auth_window seconds
    auth_window: float = 60.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(opts: ServeOptions) -> None:
    """Refuse what would expose tokens, or what cannot work, naming the option."""
    if (opts.certfile is None) != (opts.keyfile is None):
        raise ValidationError("--cert" if opts.certfile is None else "--key",
                              "TLS needs both --cert and --key")
    for option, path in (("--cert", opts.certfile), ("--key", opts.keyfile)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{option} {path}: no such file")
    if opts.certfile is None and not is_loopback(opts.host) and not opts.allow_remote_plaintext:
        raise ValidationError("--host", f"{opts.host} is not a loopback address: serve TLS "
                                        f"(--cert/--key), or say --allow-remote-plaintext")
    if not 0 <= opts.port <= 65535:
        raise ValidationError("--port", f"{opts.port} is not a TCP port")


def _ssl_check(opts: ServeOptions) -> None:
    if opts.certfile is None or opts.keyfile is None:
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            str(opts.certfile), str(opts.keyfile))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"--cert {opts.certfile} / --key {opts.keyfile}: cannot be used "
                          f"as a TLS certificate and key: {exc}") from None


def bind(host: str, port: int) -> socket.socket:
    """The listening socket; a ConfigError naming the address when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve(service: FloyDeployService, opts: ServeOptions,
          announce: Callable[[str], None] = print) -> None:
    """Run the server until SIGINT/SIGTERM (uvicorn's own handling: in-flight requests
    finish, event streams are closed)."""
    check_options(opts)
    _ssl_check(opts)
    tokens_file = opts.tokens_file or service.settings.home / "tokens.yml"
    registry = TokenRegistry(TokenFile(tokens_file))
    limiter = FailureLimiter(opts.max_auth_failures, opts.auth_window)
    app = create_app(service, Authenticator(registry, limiter))
    sock = bind(opts.host, opts.port)
    port = sock.getsockname()[1]
    scheme = "https" if opts.certfile else "http"
    shown = f"[{opts.host}]" if ":" in opts.host else opts.host
    config = uvicorn.Config(
        app, ssl_certfile=str(opts.certfile) if opts.certfile else None,
        ssl_keyfile=str(opts.keyfile) if opts.keyfile else None,
        log_level="info", access_log=True, server_header=False, proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    if not len(registry):
        log.warning("no API token in %s: every /v1 call will be refused; make one with "
                    "'floy token add NAME --role deployer'", tokens_file)
    announce(f"floy serve: listening on {scheme}://{shown}:{port} "
             f"({len(registry)} token(s) in {tokens_file}; dashboard at /)")
    uvicorn.Server(config).run(sockets=[sock])
