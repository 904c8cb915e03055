# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Running an instance's restart command: ``/bin/sh -c`` in the release directory, in a
session (process group) of its own, output appended to the instance's restart log.

While it runs, its process group is recorded (floy_process_groups.record_restart), so that
the next release or probe stops what is left of it if this module is killed. At the
deadline, on a cancel and after a failure, the whole group is killed.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

from ansible_collections.floy.release.plugins.module_utils.floy_errors import (
    DeadlineExceeded,
    StartFailed,
)
from ansible_collections.floy.release.plugins.module_utils.floy_layout import utc_now
from ansible_collections.floy.release.plugins.module_utils.floy_process_groups import (
    clear_restart,
    kill_group,
    record_restart,
)


def restart_environment(layout, service, instance_id, version, port):
    """The environment of the restart command of releases/<version> (DOCUMENTATION lists it)."""
    env = dict(os.environ)
    # floy tags the processes of a run so it can wait for them after a cancel; the
    # service started here is not part of the run and must not carry the tag.
    env.pop("FLOY_RUN_ID", None)
    env.update(
        {
            "FLOY_SERVICE": service,
            "FLOY_INSTANCE_ID": instance_id,
            "FLOY_VERSION": version,
            "FLOY_PORT": str(port),
            "FLOY_INSTANCE_DIR": layout.instance_dir,
            "FLOY_RELEASE_DIR": layout.release_dir(version),
            "FLOY_SHARED_DIR": layout.shared_dir,
            "FLOY_PYTHON": sys.executable,
        }
    )
    return env


def run_restart(command, layout, version, env, deadline, timeout, detail_on_timeout):
    """Run ``command`` in releases/<version> until it exits or ``deadline`` (monotonic).

    Raises DeadlineExceeded(timeout, detail_on_timeout) at the deadline and StartFailed
    (not retryable, with the log's last lines) on a non-zero exit; anything raised while it
    runs (a Cancelled) kills its group and passes through.
    """
    release_dir = layout.release_dir(version)
    log_path = layout.restart_log_path
    with open(log_path, "ab") as log:
        log.write(
            ("--- %s floy restart of %s in %s\n" % (utc_now(), version, release_dir)).encode()
        )
        log.flush()
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=release_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    try:
        # If this module dies while the command runs, the next release or probe on
        # the instance stops what is left of its group (module_utils/floy_process_groups).
        with contextlib.suppress(OSError):
            record_restart(layout.restart_record_path, proc.pid)
        rc = proc.wait(timeout=max(0.01, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise DeadlineExceeded(timeout, detail_on_timeout) from None
    except BaseException:
        # Cancelled (SIGTERM) or anything else: the command runs in its own session,
        # so nobody else would stop it.
        kill_group(proc)
        raise
    finally:
        clear_restart(layout.restart_record_path)
    if rc != 0:
        # A failed (or killed) restart command may have left children in its group
        # (what it was starting): this release is going back, so nothing of it stays.
        kill_group(proc)
        raise StartFailed(
            "restart command failed with exit status %d for %s (see %s)%s"
            % (rc, version, log_path, log_tail(log_path))
        )


def log_tail(path, lines=5):
    """The last lines of a log file, formatted to follow a message."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return (": " + " | ".join(tail)) if tail else ""
