#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Promote, promote in full or abort a canary deployment by writing its marker."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: floy_promote
short_description: Promote, promote in full or abort a canary deployment
description:
  - Writes the marker a deployment with steps (C(floy_steps) of the floy playbook
    C(deploy.yml)) waits for, in I(dir)/I(run_id)/ on the host that keeps them
    (C(floy_promote_host)); M(floy.release.floy_pause) reads it before the next batch.
  - C(promote) writes C(promote-<batch>) - that batch may start; I(batch=next) takes the
    batch whose pause holds now (the C(waiting) record of the run). C(full) writes C(full) -
    every remaining pause ends. C(abort) writes C(abort) - the run stops before its next
    batch, failing with I(note).
  - Fails when the run's directory does not exist on this host (the run has not started,
    or I(dir), I(run_id) or the host differ from the deployment's), so that a marker is
    never written where nobody reads it.
options:
  dir:
    description: Directory of the markers of every run, C(floy_promote_dir).
    type: path
    required: true
  run_id:
    description: ID of the run, C(floy_canary_id).
    type: str
    required: true
  action:
    description: Which marker to write.
    type: str
    choices: [promote, full, abort]
    default: promote
  batch:
    description:
      - For I(action=promote), the batch that may start (2 or more), or C(next) for the one
        whose pause holds now. Writing a later batch's marker ahead lets it start without
        holding.
    type: str
    default: next
  note:
    description: A line kept in the marker and shown by the deployment (who, why).
    type: str
    default: ""
version_added: "0.2.0"
author: floy contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: floy.release.floy_pause
    description: Holds a batch until its marker appears.
"""

EXAMPLES = r"""
- name: Let the batch whose pause holds now start
  floy.release.floy_promote:
    dir: /opt/floy/web/.promote
    run_id: web-2.0.0
    note: error rate flat - alice
  delegate_to: localhost

- name: Stop the deployment before its next batch
  floy.release.floy_promote:
    dir: /opt/floy/web/.promote
    run_id: web-2.0.0
    action: abort
    note: p99 latency up 40% on the canary - alice
  delegate_to: localhost
"""

RETURN = r"""
marker:
  description: Path of the marker written.
  type: str
  returned: success
batch:
  description: The batch a C(promote) marker lets start; 0 for C(full) and C(abort).
  type: int
  returned: success
waiting:
  description: The run's C(waiting) record (C(batch), C(pause), C(since), C(until)) when a
    pause holds, else an empty dict.
  type: dict
  returned: success
msg:
  description: What was written, in a sentence.
  type: str
  returned: always
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.floy.release.plugins.module_utils.floy_canary import (
    PROMOTE,
    CanaryError,
    marker_holds,
    marker_path,
    read_waiting,
    run_dir,
    write_marker,
)


def which_batch(batch, waiting):
    """The batch a promote lets start, from I(batch) (a number or ``next``)."""
    text = (batch or "").strip()
    if text == "next":
        if not waiting:
            raise CanaryError(
                "no pause holds now, so floy_promote_batch=next names no batch: give the number of "
                "the batch to let start (its marker may be written ahead of its pause)")
        return waiting["batch"]
    if not re.match(r"^[0-9]{1,7}$", text) or int(text) < 2:
        raise CanaryError("floy_promote_batch must be next or the number of a batch from 2 (batch 1 "
                          "never waits), got %r" % (batch,))
    return int(text)


def promote(module, params):
    """The module's result; raises CanaryError for bad input or a run not found."""
    directory = run_dir(params["dir"], params["run_id"])
    if not os.path.isdir(directory):
        raise CanaryError(
            "no canary run %s here: %s does not exist (deploy.yml with floy_steps makes it "
            "before batch 1). Check floy_canary_id, floy_promote_dir and floy_promote_host - "
            "in AWX each job runs in its own container, so floy_promote_host must be a host "
            "both jobs reach, not localhost" % (params["run_id"], directory))
    waiting = read_waiting(directory) or {}
    action = params["action"]
    batch = which_batch(params["batch"], waiting) if action == PROMOTE else 0
    path = marker_path(directory, action, batch)
    if module.check_mode:
        changed = not marker_holds(path, params["note"])
    else:
        changed = write_marker(path, params["note"])
    what = {"promote": "batch %d may start" % batch,
            "full": "every remaining pause ends",
            "abort": "the run stops before its next batch"}[action]
    holds = (" (the pause before batch %d holds now)" % waiting["batch"]) if waiting else ""
    return dict(changed=changed, marker=path, batch=batch, waiting=waiting,
                msg="%s %s: %s%s" % ("wrote" if changed else "kept", path, what, holds))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            run_id=dict(type="str", required=True),
            action=dict(type="str", choices=["promote", "full", "abort"], default="promote"),
            batch=dict(type="str", default="next"),
            note=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    try:
        result = promote(module, module.params)
    except CanaryError as error:
        module.fail_json(msg=str(error))
    except OSError as error:
        module.fail_json(msg="cannot write the marker: %s" % error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
