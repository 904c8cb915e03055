# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""canary_steps: floy_steps' grammar, and batches cut exactly as Ansible cuts serial's."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.executor.playbook_executor import PlaybookExecutor
from ansible_collections.floy.release.plugins.filter.canary_steps import (
    FilterModule,
    batch_starts,
    canary_steps,
    canary_steps_error,
)

# floy_steps as given -> (serial, pauses keyed by the batch after which they hold)
VALID = [
    ("1,pause,10%,pause 5m,50%,100%", [1, "10%", "50%", "100%"], {1: -1, 2: 300}),
    ("5", [5], {}),
    (" 1 , pause 90 ,\t2 ", [1, 2], {1: 90}),
    ("05,0000100%", [5, "100%"], {}),
    ("1,pause 90s,2", [1, 2], {1: 90}),
    ("1,pause 1h30m,2", [1, 2], {1: 5400}),
    ("1,pause 2h,2,pause 1m1s,3", [1, 2, 3], {1: 7200, 2: 61}),
    ("1,pause 1h2m3s,2", [1, 2], {1: 3723}),
    ("1,pause\t\t7m,2", [1, 2], {1: 420}),
    ("1,pause 604800,2", [1, 2], {1: 604800}),
    ("1,pause 168h,2", [1, 2], {1: 604800}),
    ("1000000,1%", [1000000, "1%"], {}),
    ("0000001", [1], {}),
    ("\u00a05\u2003", [5], {}),
    ("1,pause\n5m,2", [1, 2], {1: 300}),
    ("1,pause 000000090,2", [1, 2], {1: 90}),
    ([1, "pause", "10%", "pause 5m", 100], [1, "10%", 100], {1: -1, 2: 300}),
    ([" 2 ", "pause 1s", "3"], [2, 3], {1: 1}),
    (",".join(["1"] * 100), [1] * 100, {}),
]

# floy_steps as given -> the start of the message that refuses it
INVALID = [
    ("", "floy_steps is empty"),
    ("  ", "floy_steps is empty"),
    ([], "floy_steps is empty"),
    ("pause,1", "floy_steps item 1 'pause': the first item must be a batch"),
    ("pause 5m,1", "floy_steps item 1 'pause 5m': the first item must be a batch"),
    ("1,pause", "floy_steps item 2 'pause': the last item must be a batch"),
    ("1,pause 5m", "floy_steps item 2 'pause 5m': the last item must be a batch"),
    ("1,pause,pause 5m,2", "floy_steps item 3 'pause 5m' follows a pause"),
    ("0", "floy_steps item 1 '0' is out of range: a batch is 1 to 1000000"),
    ("1000001", "floy_steps item 1 '1000001' is out of range"),
    ("0%", "floy_steps item 1 '0%' is out of range: a percentage is 1% to 100%"),
    ("101%", "floy_steps item 1 '101%' is out of range"),
    ("1,,2", "floy_steps item 2 is empty"),
    ("1,", "floy_steps item 2 is empty"),
    ("1,pause 5x", "floy_steps item 2 'pause 5x': the duration is"),
    ("1,pause 5x,2", "floy_steps item 2 'pause 5x': the duration is"),
    ("1,pause 30s5m,2", "floy_steps item 2 'pause 30s5m': the duration is"),
    ("1,pause 5m5m,2", "floy_steps item 2 'pause 5m5m': the duration is"),
    ("1,pause 1d,2", "floy_steps item 2 'pause 1d': the duration is"),
    ("1,pause 5 m,2", "floy_steps item 2 'pause 5 m': the duration is"),
    ("1,pause 0,2", "floy_steps item 2 'pause 0' is out of range: a pause lasts"),
    ("1,pause 0h0m0s,2", "floy_steps item 2 'pause 0h0m0s' is out of range"),
    ("1,pause 604801,2", "floy_steps item 2 'pause 604801' is out of range"),
    ("1,pause5m,2", "floy_steps item 2 'pause5m' is not a batch"),
    ("1,PAUSE,2", "floy_steps item 2 'PAUSE' is not a batch"),
    ("1,wait,2", "floy_steps item 2 'wait' is not a batch"),
    ("2.5", "floy_steps item 1 '2.5' is not a batch"),
    ("-1", "floy_steps item 1 '-1' is not a batch"),
    ("25 %", "floy_steps item 1 '25 %' is not a batch"),
    ("\uff11", "floy_steps item 1 '\uff11' is not a batch"),
    ("{{ 1 }}", "floy_steps item 1 '{{ 1 }}' is not a batch"),
    ("00000001", "floy_steps item 1 '00000001' is not a batch"),
    ("1,pause 0000000090,2", "floy_steps item 2 'pause 0000000090': the duration is"),
    ("1,pause 0000001h,2", "floy_steps item 2 'pause 0000001h': the duration is"),
    (",".join(["1"] * 101), "floy_steps has 101 items; at most 100"),
    ([1, 0], "floy_steps item 2 0 is out of range"),
    ([1, True], "floy_steps item 2 True is not a batch"),
    ([1, 2.5], "floy_steps item 2 2.5 is not a batch"),
    ([1, None], "floy_steps item 2 None is not a batch"),
    (["1,2"], "floy_steps item 1 '1,2' holds a comma"),
    (True, "floy_steps must be text"),
    (7, "floy_steps must be text"),
    (2.5, "floy_steps must be text"),
    ({"1": 2}, "floy_steps must be text"),
]


@pytest.mark.parametrize(("steps", "serial", "pauses"), VALID)
def test_valid_steps(steps, serial, pauses):
    assert canary_steps(steps) == {"serial": serial, "pauses": pauses}
    assert canary_steps_error(steps) == ""


@pytest.mark.parametrize(("steps", "message"), INVALID)
def test_invalid_steps_name_floy_steps_and_the_item(steps, message):
    with pytest.raises(AnsibleFilterError) as info:
        canary_steps(steps)
    assert str(info.value).startswith(message)
    assert canary_steps_error(steps).startswith(message)


def _ansible_batches(serial, hosts):
    """Ansible's own batches of ``hosts`` hosts under ``serial`` (PlaybookExecutor's)."""

    class Inventory:
        def get_hosts(self, pattern, order=None):
            return list(range(hosts))

    class Play:
        pass

    executor = PlaybookExecutor.__new__(PlaybookExecutor)
    executor._inventory = Inventory()
    play = Play()
    play.hosts, play.order, play.serial = "all", "inventory", list(serial)
    return [batch[0] for batch in executor._get_serialized_batches(play)]


@pytest.mark.parametrize("steps", [
    "1,pause,10%,pause 5m,50%,100%", "1,pause,100%", "1,pause 2s,100%", "2,pause,1", "29%",
    "1,29%,33%", "3,pause,1%,pause,50%", "1,1,1", "100%", "1,pause,200",
])
@pytest.mark.parametrize("hosts", [1, 2, 3, 7, 10, 33, 100, 101, 250])
def test_batches_start_where_ansible_starts_them(steps, hosts):
    plan = canary_steps(steps, hosts=hosts)
    assert plan["starts"] == _ansible_batches(plan["serial"], hosts)


def test_batch_starts():
    # 29% of 100 is 28 for Ansible (a float floored), and a percentage is at least one host
    assert batch_starts([1, "29%"], 100)[:4] == [0, 1, 29, 57]
    assert batch_starts(["1%"], 3) == [0, 1, 2]
    assert batch_starts([5], 0) == []


@pytest.mark.parametrize("hosts", [-1, True, "3", 2.5])
def test_hosts_must_be_a_count(hosts):
    with pytest.raises(AnsibleFilterError):
        canary_steps("1", hosts=hosts)


def test_filters_are_exported():
    assert FilterModule().filters() == {"canary_steps": canary_steps,
                                        "canary_steps_error": canary_steps_error}
