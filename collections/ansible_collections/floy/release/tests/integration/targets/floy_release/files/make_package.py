# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Build the package of one version of the test service: hello-<version>.tar.gz.

Usage: python make_package.py DIR VERSION. The package holds VERSION and bin/restart, a
restart command that records which release it was started in (FLOY_VERSION and its
working directory) in the instance's shared directory, where the test reads it.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile

RESTART = b"""#!/bin/sh
# Started by floy_release in releases/<version>: note which release that was.
echo "$FLOY_VERSION $(pwd -P)" > "$FLOY_SHARED_DIR/started"
"""


def add(tar, path, data, mode):
    """Add a regular file ``path`` with ``data`` and ``mode`` to ``tar``."""
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def make_package(directory, version):
    """Write ``directory``/hello-<version>.tar.gz; return its path."""
    path = os.path.join(directory, f"hello-{version}.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        add(tar, "VERSION", version.encode() + b"\n", 0o644)
        bin_dir = tarfile.TarInfo("bin")
        bin_dir.type = tarfile.DIRTYPE
        bin_dir.mode = 0o755
        tar.addfile(bin_dir)
        add(tar, "bin/restart", RESTART, 0o755)
    return path


if __name__ == "__main__":
    print(make_package(sys.argv[1], sys.argv[2]))
