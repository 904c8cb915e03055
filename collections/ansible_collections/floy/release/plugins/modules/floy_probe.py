#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
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
version_added: "0.1.0"
# Not on GitHub yet, so no handle: "!UNKNOWN" is validate-modules' form for that.
author: floy contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the instance directory alike in both modes (the one thing it may stop
      is what is left of a restart command whose release died).
  diff_mode:
    support: none
  platform:
    platforms: linux
    details: Reads C(/proc) to stop what is left of a restart command whose release died.
seealso:
  - module: floy.release.floy_release
    description: Releases a version to an instance; this module reads what it wrote.
  - plugin: floy.release.floy
    plugin_type: inventory
    description: floy's instance registry as an inventory.
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
  description:
    - Names under C(releases/) that are not complete releases, by floy_release's rule (a
      complete release has both its record and its directory, a real one, not a symlink).
    - Names starting with C(.) (temporary names) are never listed.
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

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.floy.release.plugins.module_utils.floy_layout import (
    LOCK_WAIT,
    InstanceLayout,
    complete_record,
    lock_shared,
    read_current,
    read_json,
    release_names,
)
from ansible_collections.floy.release.plugins.module_utils.floy_process_groups import (
    stop_orphaned_restart,
)


def wait_for_release(layout, limit=LOCK_WAIT):
    """Seconds spent waiting for the instance lock (shared); None if it stayed held."""
    started = time.monotonic()
    try:
        fd = lock_shared(layout, limit)
    except FileNotFoundError:
        return 0.0  # no lock file: no release ever ran here
    if fd is None:
        return None
    try:
        # No release holds the instance: a restart command left by one that died is
        # stopped now (while the lock keeps a new release from starting).
        stop_orphaned_restart(layout.restart_record_path, layout.instance_dir)
        return round(time.monotonic() - started, 3)
    finally:
        os.close(fd)


def probe(instance_dir):
    """Everything the module reports about one instance directory.

    ``current``, complete and incomplete mean what floy_release means by them
    (module_utils/floy_layout): the probe never reports a release it would not reuse.
    """
    layout = InstanceLayout(instance_dir)
    result = dict(exists=os.path.isdir(layout.instance_dir), current_version="", state={},
                  releases=[], incomplete=[], waited=0.0, busy=False)
    if not result["exists"]:
        return result
    waited = wait_for_release(layout)
    result["waited"] = waited if waited is not None else LOCK_WAIT
    result["busy"] = waited is None
    # The name as found on disk: the controller validates what hosts report.
    result["current_version"] = read_current(layout)[1]
    result["state"] = read_json(layout.state_path) or {}
    complete, incomplete = [], []
    for name in release_names(layout):
        record = complete_record(layout, name)
        if record is None:
            incomplete.append(name)
        else:
            complete.append((str(record.get("installed_at", "")), name))
    result["releases"] = [version for _installed, version in sorted(complete)]
    result["incomplete"] = sorted(incomplete)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(instance_dir=dict(type="path", required=True)),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, **probe(module.params["instance_dir"]))


if __name__ == "__main__":
    main()
