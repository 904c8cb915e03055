# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Running a module's main() in-process, as Ansible would, and catching its result."""

from __future__ import annotations

import contextlib
import json
import signal

import pytest
from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core before 2.19: the arguments as AnsibleModule reads them

    @contextlib.contextmanager
    def patch_module_args(args):
        """Expose ``args`` to AnsibleModule instances created within this context."""
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


class ModuleExit(Exception):
    """exit_json or fail_json was called; ``result`` is what the module returned."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


def exit_json(self, **result):
    """AnsibleModule.exit_json without printing or exiting."""
    result.setdefault("failed", False)
    raise ModuleExit(result)


def fail_json(self, msg, **result):
    """AnsibleModule.fail_json without printing or exiting."""
    result.update(msg=msg, failed=True)
    raise ModuleExit(result)


@pytest.fixture
def run_module(monkeypatch):
    """Call ``run_module(module, args)``: the module's main() under ``args``; its result dict.

    AnsibleModule parses and validates ``args`` as it does under Ansible (patch_module_args);
    ``_ansible_check_mode: true`` in ``args`` is check mode. The SIGTERM handler a module
    installs is put back afterwards.
    """
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    previous = signal.getsignal(signal.SIGTERM)

    def run(module, args):
        try:
            with patch_module_args(args), pytest.raises(ModuleExit) as info:
                module.main()
        finally:
            signal.signal(signal.SIGTERM, previous)
        return info.value.result

    return run
