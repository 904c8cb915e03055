# Copyright: floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""release_steps: the order of hook task files and floy_release phases for the role."""

from __future__ import annotations

# The places a hook can run, in order, with the phase each one surrounds. Phases between
# two set hooks run in one module execution: with no hook set, the whole release is one.
ORDER = (
    ("before_rollback", None),
    ("before_fetch", None),
    (None, "fetch"),
    ("after_fetch", None),
    ("before_switch", None),
    (None, "switch"),
    ("after_switch", None),
    ("before_cleanup", None),
    (None, "cleanup"),
    ("after_cleanup", None),
    ("after_rollback", None),
)
HOOKS = tuple(hook for hook, _phase in ORDER if hook)


def release_steps(hooks, operation="deploy"):
    """The steps of one instance's release: ``{"hook": name, "file": path}`` or
    ``{"phases": [...], "final": bool, "first": bool}``, in order.

    ``hooks`` maps hook names (``before_fetch`` ...) to task files; empty ones are unset.
    The rollback hooks run only when ``operation`` is ``rollback``. Only the last module
    run is ``final``; when a hook follows it, a run with no phases ends the release (it
    reports what the instance runs after that hook). Only the ``first`` run chooses the
    version (a rollback to the previous release); the later ones take the one it chose.
    """
    if not isinstance(hooks, dict):
        raise TypeError("release_steps expects a dict of hook names to task files")
    unknown = sorted(set(hooks) - set(HOOKS))
    if unknown:
        raise ValueError("unknown hook(s) %s; known: %s" % (", ".join(unknown), ", ".join(HOOKS)))
    steps = []
    group = []
    for hook, phase in ORDER:
        if phase:
            group.append(phase)
            continue
        path = hooks.get(hook) or ""
        if not path or (hook.endswith("_rollback") and operation != "rollback"):
            continue
        if group:
            steps.append({"phases": group, "final": False})
            group = []
        steps.append({"hook": hook, "file": str(path)})
    if group:
        steps.append({"phases": group, "final": False})
    if "phases" in steps[-1]:
        steps[-1]["final"] = True
    else:
        steps.append({"phases": [], "final": True})
    runs = [step for step in steps if "phases" in step]
    for step in runs:
        step["first"] = step is runs[0]
    return steps


class FilterModule(object):
    """floy.release's filters."""

    def filters(self):
        return {"release_steps": release_steps}
