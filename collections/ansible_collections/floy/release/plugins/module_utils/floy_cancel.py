# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Cancelling a running release: SIGTERM becomes a Cancelled exception, so that the
release's cleanup (switching back, killing the restart command's group) runs.

floy cancels a run by signalling ansible-playbook, which forwards SIGTERM to the module
over a local connection. Over SSH a cancelled or lost controller only closes the session's
channel, so :func:`watch_controller` turns that into the same SIGTERM.

The cancel message names the phase the release is in: the release sets
``CURRENT_PHASE[0]`` as it enters each phase.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations

import os
import signal

from ansible_collections.floy.release.plugins.module_utils.floy_errors import ReleaseError

# The phase the running release is in, for the cancel message (set by Release.enter).
CURRENT_PHASE = ["starting"]


class Cancelled(ReleaseError):
    """SIGTERM arrived: floy is cancelling the run (ansible-playbook forwards the signal)."""

    def __init__(self):
        super().__init__("cancelled while %s" % CURRENT_PHASE[0], retryable=False)


def on_sigterm(signum, frame):
    """Turn the first SIGTERM into a Cancelled exception so that cleanup runs; later
    signals during that cleanup are ignored (floy SIGKILLs after its grace period)."""
    # A no-op handler, not SIG_IGN: an ignored signal is inherited across exec, and the
    # service restarted during the cleanup would then ignore SIGTERM for good.
    signal.signal(signal.SIGTERM, _ignore_signal)
    raise Cancelled()


def _ignore_signal(signum, frame):
    """Swallow a signal (reset to the default in any program this process execs)."""


def watch_controller(fd=1):
    """Cancel this release (SIGTERM to itself) when nobody will read its result any more.

    Over SSH a cancelled or lost controller only closes the session's channel: sshd sends
    no signal to a command without a tty, so without this the module (and the restart
    command it waits for) would run on for up to its timeout. The module's stdout is then a
    pipe whose reader is gone, which poll() reports as POLLERR (POLLHUP for a socket).
    """
    import select
    import stat
    import threading

    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return

    def watch():
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR, POLLHUP and POLLNVAL are always reported
        while True:
            for _fd, events in poller.poll():
                if events & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

    threading.Thread(target=watch, name="floy-watch-controller", daemon=True).start()
