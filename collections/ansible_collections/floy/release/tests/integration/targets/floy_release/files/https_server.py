# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Serve a directory over HTTPS on 127.0.0.1, in the background, for a bounded time.

Usage: python https_server.py ROOT CERT KEY LIFETIME. Starts the server in a process of its
own (a new session, so it outlives the task that started it), waits until it listens on the
port the system picked, prints ``<port> <pid>`` and exits. The server stops on SIGTERM, or
by itself after LIFETIME seconds, so that a run that dies before its cleanup leaves nothing
behind for long. Loopback only.
"""

from __future__ import annotations

import functools
import http.server
import os
import signal
import ssl
import sys
import threading


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Files under the root; no request log on stderr."""

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        """Quiet: the test asserts on what floy_release reports, not on this log."""


def serve(root, cert, key, lifetime, ready):
    """Serve ``root`` until SIGTERM or ``lifetime`` seconds; ``ready(port)`` once listening."""
    handler = functools.partial(QuietHandler, directory=root)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)

    def stop(*_args):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    timer = threading.Timer(lifetime, stop)
    timer.daemon = True
    timer.start()
    ready(httpd.server_address[1])
    httpd.serve_forever()
    httpd.server_close()


def start_in_background(root, cert, key, lifetime):
    """Fork the server into a session of its own; return ``"<port> <pid>"`` once it listens."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the server
        os.close(read_fd)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)

        def ready(port):
            os.write(write_fd, f"{port} {os.getpid()}\n".encode())
            os.close(write_fd)

        try:
            serve(root, cert, key, lifetime, ready)
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        line = pipe.read()  # the ready line, or nothing if the server died first
    if not line:
        os.waitpid(pid, 0)
        raise SystemExit("the HTTPS server did not start")
    return line.strip()


if __name__ == "__main__":
    print(start_in_background(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
