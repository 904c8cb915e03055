#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Hold the next batch of a canary deployment until it is promoted, in one execution."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: floy_pause
short_description: Hold the next batch of a canary deployment until it is promoted
description:
  - The gate of a deployment with steps (C(floy_steps) of the floy playbook C(deploy.yml),
    through the role C(floy.release.floy)), run once before each batch on the host that
    keeps the run's markers (C(floy_promote_host)). The markers are files under
    I(dir)/I(run_id)/ - C(promote-<batch>), C(full) and C(abort) - written by
    M(floy.release.floy_promote) or by hand; a marker's first line is a note that is shown.
  - Before batch 1, makes the run's directory and removes the markers an earlier run with
    the same I(run_id) left there.
  - Before a later batch, an C(abort) marker stops the run (C(stop=true)). With I(pause=0)
    the batch starts. Otherwise it holds until C(promote-<batch>) or C(full) appears, or
    the pause is over (I(pause) seconds), or I(max_pause) has passed for a pause until
    promoted (I(pause=-1)), which stops the run too. While it holds, C(waiting) in the run's
    directory says which batch waits.
  - It never fails for a stop - it reports it, so that the playbook ends the play cleanly
    before the batch and then fails with I(msg).
options:
  dir:
    description: Directory of the markers of every run, C(floy_promote_dir).
    type: path
    required: true
  run_id:
    description: ID of the run, C(floy_canary_id); its markers are in I(dir)/I(run_id)/.
    type: str
    required: true
  batch:
    description: Number of the batch about to start, from 1.
    type: int
    required: true
  pause:
    description:
      - Seconds the pause before I(batch) lasts unless it is promoted earlier; C(0) for no
        pause (only an C(abort) marker is looked for); C(-1) until promoted.
    type: int
    default: 0
  max_pause:
    description:
      - Seconds a pause until promoted (I(pause=-1)) waits at most before the run stops,
        C(floy_pause_max_seconds). At most 604800 (7 days).
    type: int
    default: 86400
  poll:
    description: Seconds between two looks at the markers.
    type: float
    default: 1.0
  instances:
    description:
      - The instances of I(batch) and of the batches after it, in order - named in I(msg)
        (the first 20) when the run stops.
    type: list
    elements: str
    default: []
version_added: "0.2.0"
author: floy contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: none
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The wait is one module execution. Over SSH, a long pause needs a connection that idle
    firewalls do not cut (e.g. C(ServerAliveInterval) in C(ansible_ssh_common_args)).
  - It stops waiting when the controller goes away - its output pipe closes, or (with a
    local connection) the ansible-playbook above it is killed.
seealso:
  - module: floy.release.floy_promote
    description: Writes the markers this module reads.
  - plugin: floy.release.canary_steps
    plugin_type: filter
    description: Turns C(floy_steps) into Ansible's serial list and these pauses.
"""

EXAMPLES = r"""
- name: Before batch 2, hold for at most 5 minutes unless promoted earlier
  floy.release.floy_pause:
    dir: /opt/floy/web/.promote
    run_id: web-2.0.0
    batch: 2
    pause: 300
  delegate_to: localhost
  run_once: true
  register: gate

- name: Stop before the batch when an abort marker (or no promote) said so
  ansible.builtin.meta: end_play
  when: gate.stop
"""

RETURN = r"""
action:
  description:
    - What decided - C(start) (batch 1, markers cleared), C(continue) (no pause), C(promote)
      (its C(promote-<batch>) marker), C(full), C(elapsed) (the pause is over), C(abort) or
      C(expired) (no promote within I(max_pause)).
  type: str
  returned: always
stop:
  description: Whether the run must stop before I(batch) (C(abort) or C(expired)).
  type: bool
  returned: always
note:
  description: First line of the deciding marker; empty when it has none or none decided.
  type: str
  returned: always
marker:
  description: Path of the deciding marker, or of the C(promote-<batch>) marker that was
    waited for.
  type: str
  returned: always
waited:
  description: Seconds held.
  type: float
  returned: always
removed:
  description: Markers of an earlier run removed before batch 1.
  type: list
  elements: str
  returned: always
msg:
  description: What happened, in a sentence; for a stop, why the run stops.
  type: str
  returned: always
"""

import datetime
import os
import select
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.floy.release.plugins.module_utils.floy_canary import (
    ABORT,
    FULL,
    MAX_PAUSE,
    PROMOTE,
    CanaryError,
    clear_markers,
    clear_waiting,
    look,
    marker_path,
    run_dir,
    write_waiting,
)


class ControllerGone(Exception):
    """The controller stopped reading this module's output: nobody waits for the answer."""


def output_closed(fd=1):
    """Whether the reader of ``fd`` (the module's output) has gone away."""
    try:
        poller = select.poll()
        poller.register(fd, 0)  # errors and hang-ups are always reported
        events = poller.poll(0)
    except (AttributeError, OSError, ValueError):
        return False
    return any(mask & (select.POLLERR | select.POLLHUP) for _fd, mask in events)


def parent_of(pid):
    """The parent process of ``pid`` (Linux /proc), or None."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return int(fh.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def lineage(pid=None, depth=4):
    """``(pid, parent)`` pairs from this process up ``depth`` generations (to before init)."""
    pairs, pid = [], os.getpid() if pid is None else pid
    for _generation in range(depth):
        parent = parent_of(pid)
        if not parent or parent <= 1:
            break
        pairs.append((pid, parent))
        pid = parent
    return pairs


def controller_gone_check(pairs=None, fd=1):
    """A check of whether the controller went away: the module's output closed (a lost
    connection, a worker that exited), or a process above it lost its parent - with a local
    connection, the ansible-playbook that forked the worker, killed outright (since
    ansible-core 2.19 its workers run in their own sessions and outlive a SIGKILL of it)."""
    pairs = lineage() if pairs is None else pairs

    def gone():
        return output_closed(fd) or any(parent_of(pid) != parent for pid, parent in pairs)
    return gone


def _iso_in(seconds):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _said(note):
    return ": %s" % note if note else " (no note in it)"


def not_started(instances, shown=20):
    """`` - instances not started: a, b (and 3 more)`` for a stop message, or ''."""
    if not instances:
        return ""
    more = len(instances) - shown
    return " - instances not started: %s%s" % (
        ", ".join(instances[:shown]), " (and %d more)" % more if more > 0 else "")


def hold(directory, batch, pause, max_pause, poll=1.0, clock=time.monotonic,
         sleep=time.sleep, gone=output_closed, instances=()):
    """Look at the markers before ``batch`` until one decides or the pause is over; the
    module's result (``action``, ``stop``, ``note``, ``marker``, ``waited``, ``msg``).
    ``instances`` (this batch's and the later ones') are named when the run stops."""
    started = clock()
    promote = marker_path(directory, PROMOTE, batch)
    limit = max_pause if pause < 0 else pause
    waiting = False
    try:
        while True:
            waited = round(clock() - started, 1)
            seen = look(directory, batch)
            action, note, path = seen if seen else ("", "", promote)
            if action == ABORT:
                return _result(ABORT, True, note, path, waited,
                               "aborted before batch %d by %s%s; nothing after batch %d was "
                               "started%s" % (batch, path, _said(note), batch - 1,
                                              not_started(instances)))
            if pause == 0:
                return _result("continue", False, "", promote, waited,
                               "no pause before batch %d" % batch)
            if action == FULL:
                return _result(FULL, False, note, path, waited,
                               "promoted in full by %s%s: batch %d and every later one start "
                               "without a pause" % (path, _said(note), batch))
            if action == PROMOTE:
                return _result(PROMOTE, False, note, path, waited,
                               "batch %d promoted by %s%s after %s s"
                               % (batch, path, _said(note), waited))
            if waited >= limit:
                if pause > 0:
                    return _result("elapsed", False, "", promote, waited,
                                   "the pause of %d s before batch %d is over" % (pause, batch))
                return _result("expired", True, "", promote, waited,
                               "no promote within %d s (floy_pause_max_seconds) of the pause "
                               "before batch %d: %s did not appear; nothing after batch %d was "
                               "started%s" % (max_pause, batch, promote, batch - 1,
                                              not_started(instances)))
            if not waiting:
                write_waiting(directory, batch, pause, _iso_in(pause) if pause > 0 else None)
                waiting = True
            if gone():
                raise ControllerGone()
            sleep(max(0.05, min(poll, limit - waited)))
    finally:
        if waiting:
            clear_waiting(directory)


def _result(action, stop, note, marker, waited, msg):
    return dict(action=action, stop=stop, note=note, marker=marker, waited=waited, msg=msg,
                removed=[])


def start(directory):
    """Before batch 1: the run's directory made, an earlier run's markers removed."""
    made = not os.path.isdir(directory)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    removed = clear_markers(directory)
    result = _result("start", False, "", "", 0.0,
                     "markers of this run are read from %s%s" % (
                         directory, "; removed those of an earlier run: %s" % ", ".join(removed)
                         if removed else ""))
    result.update(removed=removed, changed=made or bool(removed))
    return result


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)  # the wait's `finally` removes `waiting`


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            run_id=dict(type="str", required=True),
            batch=dict(type="int", required=True),
            pause=dict(type="int", default=0),
            max_pause=dict(type="int", default=86400),
            poll=dict(type="float", default=1.0),
            instances=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=False,
    )
    params = module.params
    try:
        directory = run_dir(params["dir"], params["run_id"])
    except CanaryError as error:
        module.fail_json(msg=str(error))
    if params["batch"] < 1:
        module.fail_json(msg="batch must be 1 or more, got %d" % params["batch"])
    if not -1 <= params["pause"] <= MAX_PAUSE:
        module.fail_json(msg="pause must be -1 (until promoted), 0 or seconds up to %d, got %d"
                         % (MAX_PAUSE, params["pause"]))
    if not 1 <= params["max_pause"] <= MAX_PAUSE:
        module.fail_json(msg="floy_pause_max_seconds must be 1 to %d (7 days), got %d"
                         % (MAX_PAUSE, params["max_pause"]))
    if params["batch"] == 1:
        try:
            module.exit_json(**start(directory))
        except OSError as error:
            module.fail_json(msg="cannot prepare %s for the markers of this run: %s"
                             % (directory, error))
    if not os.path.isdir(directory):
        module.fail_json(msg="%s is gone: it was made before batch 1 and holds this run's "
                         "markers" % directory)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        result = hold(directory, params["batch"], params["pause"], params["max_pause"],
                      max(0.05, params["poll"]), gone=controller_gone_check(),
                      instances=params["instances"])
    except ControllerGone:
        raise SystemExit(1)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
