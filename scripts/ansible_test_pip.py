"""Supply ansible-test's pip bootstrap script offline.

ansible-test makes a virtual environment without pip for each sanity test that needs
packages, and bootstraps pip into it by running ``get-pip-<version>.py``, downloaded once
from ci-files.testing.ansible.com into ``~/.ansible/test/cache/get_pip_<version>.py``
(ansible_test/_util/target/setup/requirements.py, ``bootstrap``). That host is not
reachable from every machine floy is tested on; the package index is. This script writes,
where ansible-test looks first, a stand-in that does what get-pip.py does with the pip
every Python ships (``ensurepip``): install it, then let it install the pip version
ansible-test asks for, from the package index like every other requirement.

Run by scripts/bootstrap.sh and by tests/ecosystem/test_ansible_test.py; idempotent.
Usage: python scripts/ansible_test_pip.py (with the Python of floy's virtual environment).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

# The stand-in runs inside ansible-test's new virtual environment, with its arguments
# (``--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel``) handed on as
# get-pip.py takes them: its own two flags, then pip-install arguments.
STAND_IN = '''\
"""Stand-in for get-pip.py, written by floy's scripts/ansible_test_pip.py (see there)."""
import subprocess
import sys

flags = {"--no-setuptools", "--no-wheel"}
args = [arg for arg in sys.argv[1:] if arg not in flags]
if "--no-setuptools" not in sys.argv:
    args.append("setuptools")
if "--no-wheel" not in sys.argv:
    args.append("wheel")
if not any(arg.startswith("pip") for arg in args):
    args.append("pip")
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
sys.exit(subprocess.call(
    [sys.executable, "-m", "pip", "install", "--upgrade", "--force-reinstall"] + args
))
'''


def pip_version() -> str:
    """The pip version this ansible-test bootstraps for the running Python."""
    from ansible_test._internal.python_requirements import get_venv_packages

    python = SimpleNamespace(version="{}.{}".format(*sys.version_info[:2]))
    return get_venv_packages(python)["pip"]  # type: ignore[arg-type]


def cache_path(version: str) -> Path:
    """Where ansible-test looks for the bootstrap script of pip ``version``."""
    name = "get_pip_{}.py".format(version.replace(".", "_"))
    return Path(os.path.expanduser("~/.ansible/test/cache")) / name


def supply() -> Path:
    """Write the stand-in where ansible-test looks for it (atomically); return its path."""
    path = cache_path(pip_version())
    if path.exists() and path.read_text() == STAND_IN:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".floy-tmp")
    tmp.write_text(STAND_IN)
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    print(f"ansible-test pip bootstrap: {supply()}")
