#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: floy contributors
# Apache License 2.0 (see the repository's pyproject.toml)
"""Report which release an instance runs, read from its directory, in one execution."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: floy_probe
short_description: Report the release an instance directory points at
description:
  - Reads C(current), C(.floy/state.json) and the release records under
    C(.floy/releases/) of one floy instance directory. Changes nothing.
  - Waits up to 45 seconds for a release still running on the instance (it holds
    C(.floy/lock)) to finish, so that the answer is not a moment in its middle.
options:
  instance_dir:
    description: The instance directory, C(<floy_root>/<service>/<instance_id>).
    type: path
    required: true
author: floy contributors
"""

EXAMPLES = r"""
- name: Which release does this instance run
  floy.release.floy_probe:
    instance_dir: /opt/floy/web/web-1
  register: probe
"""

RETURN = r"""
exists:
  description: Whether the instance directory exists.
  type: bool
  returned: always
current_version:
  description: Name of the release C(current) points at; empty when there is none.
  type: str
  returned: always
state:
  description: Content of C(.floy/state.json) (empty when absent or unreadable).
  type: dict
  returned: always
releases:
  description: Versions recorded complete on the host, oldest first.
  type: list
  elements: str
  returned: always
incomplete:
  description: Directories under C(releases/) with no completion record.
  type: list
  elements: str
  returned: always
waited:
  description: Seconds spent waiting for a release still running on the instance.
  type: float
  returned: always
busy:
  description: A release still held the instance after the wait; the answer may change.
  type: bool
  returned: always
"""

import fcntl
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.floy.release.plugins.module_utils.floy_orphans import (
    stop_orphaned_restart,
)


def read_json(path):
    """A JSON object from ``path``, or {} when absent or unreadable."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# A release still running on the instance (e.g. cleaning up after a cancel over SSH, where
# the controller cannot wait for it) holds the instance lock: wait for it, within bounds.
LOCK_WAIT = 45.0


def wait_for_release(instance_dir, limit=LOCK_WAIT):
    """Seconds spent waiting for the instance lock (shared); None if it stayed held."""
    path = os.path.join(instance_dir, ".floy", "lock")
    if not os.path.exists(path):
        return 0.0
    started = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                # No release holds the instance: a restart command left by one that died
                # is stopped now (while the lock keeps a new release from starting).
                stop_orphaned_restart(instance_dir)
                return round(time.monotonic() - started, 3)
            except OSError:
                if time.monotonic() - started >= limit:
                    return None
                time.sleep(0.1)
    finally:
        os.close(fd)


def probe(instance_dir):
    """Everything the module reports about one instance directory."""
    result = dict(exists=os.path.isdir(instance_dir), current_version="", state={},
                  releases=[], incomplete=[], waited=0.0, busy=False)
    if not result["exists"]:
        return result
    waited = wait_for_release(instance_dir)
    result["waited"] = waited if waited is not None else LOCK_WAIT
    result["busy"] = waited is None
    current = os.path.join(instance_dir, "current")
    if os.path.islink(current):
        target = os.readlink(current)
        if os.path.isdir(os.path.join(instance_dir, target)):
            result["current_version"] = os.path.basename(target.rstrip("/"))
    result["state"] = read_json(os.path.join(instance_dir, ".floy", "state.json"))
    records = os.path.join(instance_dir, ".floy", "releases")
    releases_dir = os.path.join(instance_dir, "releases")
    complete = []
    if os.path.isdir(records):
        for name in os.listdir(records):
            version = name[: -len(".json")]
            # Complete, as floy_release means it: a record and its directory (the record
            # is written first, so a release killed in between has only the record).
            if name.endswith(".json") and os.path.isdir(os.path.join(releases_dir, version)):
                data = read_json(os.path.join(records, name)) or {}
                complete.append((str(data.get("installed_at", "")), version))
    result["releases"] = [version for _, version in sorted(complete)]
    if os.path.isdir(releases_dir):
        result["incomplete"] = sorted(
            name for name in os.listdir(releases_dir)
            if not name.startswith(".") and name not in result["releases"]
        )
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(instance_dir=dict(type="path", required=True)),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, **probe(module.params["instance_dir"]))


if __name__ == "__main__":
    main()
