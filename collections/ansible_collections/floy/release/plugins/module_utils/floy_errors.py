# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""The failures of a release: ReleaseError, with whether retrying could help; the
deadline failure DeadlineExceeded, whose message reads ``timed out after N s`` then an
optional detail in parentheses (floy_release's RETURN documents that form of ``msg``); and
StartFailed, a new release whose restart command failed.

Retrying means running the whole module again (the role's ``until``): that is for transient
faults of the fetch and the connection only. A release that was switched to and did not
come up (StartFailed, or a failed health check) is switched back once and not retried that
way; only the module's ``health_retries`` restart it again, in place.

The cancel (SIGTERM) is one more of them: see floy_cancel.Cancelled.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations


class ReleaseError(Exception):
    """A failed release, with whether retrying could help."""

    def __init__(self, msg, retryable=False):
        super().__init__(msg)
        self.msg = msg
        self.retryable = retryable


class DeadlineExceeded(ReleaseError):
    """The overall deadline passed; ``detail`` goes in parentheses after the fixed text."""

    def __init__(self, timeout, detail=""):
        msg = "timed out after %d s" % timeout
        if detail:
            msg += " (%s)" % detail
        super().__init__(msg, retryable=False)
        self.detail = detail


class StartFailed(ReleaseError):
    """The restart command of a release failed. The release is at fault, not the network:
    not retryable (health_retries re-runs the restart in place instead)."""

    def __init__(self, msg):
        super().__init__(msg, retryable=False)
