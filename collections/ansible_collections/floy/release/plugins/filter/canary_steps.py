# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""canary_steps: a deployment's steps (``1,pause,10%,pause 5m,100%``) as Ansible's ``serial``
list and the pauses between its batches; canary_steps_error: what is wrong with them.

The grammar is floy's own (floy parses the same text for the runs it drives, batch by
batch): deploy.yml takes ``floy_steps`` by these rules when it runs without floy.

- Text: items separated by commas, whitespace around an item ignored. A list: each item an
  integer (a batch) or a string holding one item.
- A batch: ``N`` (1 to 1000000 instances) or ``N%`` (1 to 100 percent of the play's hosts),
  at most 7 digits; leading zeros dropped.
- A pause: ``pause`` (until promoted) or ``pause D``, D a number of seconds or one or more of
  ``<int>h``, ``<int>m``, ``<int>s`` in that order, each at most once (``90s``, ``5m``,
  ``1h30m``), 1 second to 7 days in total.
- At most 100 items; the first and the last are batches; no pause right after a pause.

floy's parser is orchestrator/domain/steps.py; both are held to one catalogue of cases
(tests/fixtures/steps/cases.yml of the floy repository).
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible.utils.helpers import pct_to_int

MAX_ITEMS = 100
MAX_COUNT = 1000000
MAX_PAUSE = 7 * 24 * 3600
#: The value of a pause that lasts until it is promoted.
UNTIL_PROMOTED = -1
_COUNT = re.compile(r"([0-9]{1,7})(%?)")
_PAUSE = re.compile(r"pause(?:\s+(\S.*))?")
_SECONDS = re.compile(r"[0-9]{1,9}")
_DURATION = re.compile(r"(?:([0-9]{1,6})h)?(?:([0-9]{1,8})m)?(?:([0-9]{1,9})s)?")
_HINT = ("a batch (N from 1 to %d, or N%% from 1%% to 100%%) or a pause (pause, or pause D "
         "with D like 90, 90s, 5m or 1h30m, at most 7 days)" % MAX_COUNT)


class StepsError(ValueError):
    """floy_steps does not follow the grammar; the message names floy_steps and the item."""


def _items(value):
    """The items of ``value`` (text or a list): ``(position, item)`` pairs."""
    if isinstance(value, str):
        if not value.strip():
            raise StepsError("floy_steps is empty: at least one batch is needed")
        return list(enumerate(value.split(","), start=1))
    if isinstance(value, (list, tuple)):
        if not value:
            raise StepsError("floy_steps is empty: at least one batch is needed")
        for position, item in enumerate(value, start=1):
            if isinstance(item, str) and "," in item:
                raise StepsError("floy_steps item %d %r holds a comma: a list holds one item "
                                 "per entry" % (position, item))
        return list(enumerate(value, start=1))
    raise StepsError("floy_steps must be text such as '1,pause,100%%' or a list, got %s"
                     % type(value).__name__)


def _duration(text):
    """Seconds of a pause's duration text, or None when it is not one."""
    if _SECONDS.fullmatch(text):
        return int(text)
    match = _DURATION.fullmatch(text)
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_item(position, item):
    """One item: ``("batch", 5)``, ``("batch", "25%")`` or ``("pause", seconds)``, seconds
    being :data:`UNTIL_PROMOTED` for a pause until promoted."""
    if isinstance(item, bool) or not isinstance(item, (int, str)):
        raise StepsError("floy_steps item %d %r is not %s" % (position, item, _HINT))
    if isinstance(item, int):
        if not 1 <= item <= MAX_COUNT:
            raise StepsError("floy_steps item %d %r is out of range: a batch is 1 to %d "
                             "instances" % (position, item, MAX_COUNT))
        return ("batch", int(item))
    text = item.strip()
    if not text:
        raise StepsError("floy_steps item %d is empty: %s expected" % (position, _HINT))
    count = _COUNT.fullmatch(text)
    if count:
        number, percent = int(count.group(1)), count.group(2)
        if percent and not 1 <= number <= 100:
            raise StepsError("floy_steps item %d %r is out of range: a percentage is 1%% to "
                             "100%%" % (position, item))
        if not percent and not 1 <= number <= MAX_COUNT:
            raise StepsError("floy_steps item %d %r is out of range: a batch is 1 to %d "
                             "instances" % (position, item, MAX_COUNT))
        return ("batch", "%d%%" % number if percent else number)
    pause = _PAUSE.fullmatch(text)
    if pause:
        if pause.group(1) is None:
            return ("pause", UNTIL_PROMOTED)
        seconds = _duration(pause.group(1).strip())
        if seconds is None:
            raise StepsError("floy_steps item %d %r: the duration is a number of seconds or "
                             "<int>h<int>m<int>s in that order, each unit at most once (90, 90s, "
                             "5m, 1h30m)" % (position, item))
        if not 1 <= seconds <= MAX_PAUSE:
            raise StepsError("floy_steps item %d %r is out of range: a pause lasts 1 second "
                             "to 7 days (604800 s)" % (position, item))
        return ("pause", seconds)
    raise StepsError("floy_steps item %d %r is not %s" % (position, item, _HINT))


def parse_steps(value):
    """``{"serial": [...], "pauses": {k: seconds}}`` of ``value``; raises StepsError."""
    items = _items(value)
    if len(items) > MAX_ITEMS:
        raise StepsError("floy_steps has %d items; at most %d" % (len(items), MAX_ITEMS))
    serial, pauses = [], {}
    previous = None
    for position, item in items:
        kind, amount = parse_item(position, item)
        if kind == "pause":
            if previous is None:
                raise StepsError("floy_steps item 1 %r: the first item must be a batch (a "
                                 "pause holds before the batch after it)" % (item,))
            if previous == "pause":
                raise StepsError("floy_steps item %d %r follows a pause: one pause between "
                                 "two batches" % (position, item))
            pauses[len(serial)] = amount
        else:
            serial.append(amount)
        previous = kind
    if previous == "pause":
        raise StepsError("floy_steps item %d %r: the last item must be a batch (a pause "
                         "after the last batch would hold nothing)" % (len(items), items[-1][1]))
    return {"serial": serial, "pauses": pauses}


def batch_starts(serial, hosts):
    """Where each batch of ``serial`` over ``hosts`` hosts starts (0-based), as Ansible cuts
    them: a percentage of all the hosts, floored, at least one, the last entry repeating."""
    starts, start, entry = [], 0, 0
    while start < hosts:
        starts.append(start)
        start += max(pct_to_int(serial[entry], hosts), 1)
        entry = min(entry + 1, len(serial) - 1)
    return starts


def canary_steps(value, hosts=None):
    """The plan of ``floy_steps``: ``serial`` (Ansible's serial list), ``pauses`` (the batch
    number after which to pause: seconds, or -1 until promoted) and, given the number of
    ``hosts`` in the play, ``starts`` (the 0-based index of each batch's first host)."""
    try:
        plan = parse_steps(value)
    except StepsError as error:
        raise AnsibleFilterError(str(error))
    if hosts is not None:
        if isinstance(hosts, bool) or not isinstance(hosts, int) or hosts < 0:
            raise AnsibleFilterError("canary_steps: hosts must be a count of hosts, got %r"
                                     % (hosts,))
        plan["starts"] = batch_starts(plan["serial"], hosts)
    return plan


def canary_steps_error(value):
    """What is wrong with ``floy_steps`` (a message naming it and the item), or ``""``."""
    try:
        parse_steps(value)
    except StepsError as error:
        return str(error)
    return ""


class FilterModule(object):
    """floy.release's filters for floy_steps."""

    def filters(self):
        return {"canary_steps": canary_steps, "canary_steps_error": canary_steps_error}
