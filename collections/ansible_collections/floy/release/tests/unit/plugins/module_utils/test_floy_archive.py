# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""floy_archive: a package unpacks inside its release directory, or not at all."""

from __future__ import annotations

import io
import os
import tarfile

import pytest
from ansible_collections.floy.release.plugins.module_utils.floy_archive import (
    ArchiveError,
    extract_tar,
)

MAX_BYTES = 1 << 20
MAX_ENTRIES = 100


def member(name, kind=tarfile.REGTYPE, data=b"", linkname="", mode=0o644):
    """One tar member: (TarInfo, its data or None)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, io.BytesIO(data)
    return info, None


def package(path, *members):
    """Write a .tar.gz of ``members`` at ``path``; return the path as a string."""
    with tarfile.open(str(path), "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, data)
    return str(path)


@pytest.fixture
def dest(tmp_path):
    """An empty release directory, inside a parent the archive must never write to."""
    path = tmp_path / "parent" / "release"
    path.mkdir(parents=True)
    return path


def outside(dest):
    """What exists next to the release directory (it must stay just the release)."""
    return sorted(os.listdir(str(dest.parent)))


def test_a_plain_package_unpacks_with_safe_modes(tmp_path, dest):
    archive = package(
        tmp_path / "ok.tar.gz",
        member("bin", tarfile.DIRTYPE, mode=0o777),
        member("bin/restart", data=b"#!/bin/sh\n", mode=0o4777),
        member("VERSION", data=b"1.0.0\n"),
        member("bin/version", tarfile.SYMTYPE, linkname="../VERSION"),
    )
    entries, size = extract_tar(archive, str(dest), MAX_BYTES, MAX_ENTRIES)
    assert (entries, size) == (4, len(b"#!/bin/sh\n") + len(b"1.0.0\n"))
    assert (dest / "bin" / "version").read_text() == "1.0.0\n"
    mode = os.stat(str(dest / "bin" / "restart")).st_mode & 0o7777
    assert mode & 0o6000 == 0, "setuid and setgid are dropped"
    assert mode & 0o022 == 0, "group/other write is dropped"
    assert outside(dest) == ["release"]


@pytest.mark.parametrize(
    "members",
    [
        pytest.param([member("../escape", data=b"x")], id="dot-dot"),
        pytest.param([member("a/../../escape", data=b"x")], id="dot-dot-inside"),
        pytest.param([member("/tmp/escape", data=b"x")], id="absolute"),
        pytest.param([member("up", tarfile.SYMTYPE, linkname="..")], id="symlink-to-parent"),
        pytest.param(
            [member("abs", tarfile.SYMTYPE, linkname="/etc/passwd")], id="absolute-symlink",
        ),
        pytest.param(
            [member("a", tarfile.DIRTYPE), member("a/link", tarfile.SYMTYPE, linkname="../../x")],
            id="symlink-escaping-from-a-subdirectory",
        ),
        pytest.param(
            [member("up", tarfile.SYMTYPE, linkname="."), member("up/../../escape", data=b"x")],
            id="write-through-a-symlink",
        ),
        pytest.param(
            [member("hard", tarfile.LNKTYPE, linkname="../escape")], id="hard-link-out",
        ),
        pytest.param([member("dev", tarfile.CHRTYPE)], id="device"),
        pytest.param([member("fifo", tarfile.FIFOTYPE)], id="fifo"),
    ],
)
def test_members_leading_out_of_the_release_are_refused(tmp_path, dest, members):
    archive = package(tmp_path / "bad.tar.gz", *members)
    with pytest.raises(ArchiveError):
        extract_tar(archive, str(dest), MAX_BYTES, MAX_ENTRIES)
    assert outside(dest) == ["release"]


def test_a_symlink_chain_leading_out_is_refused(tmp_path, dest):
    """Each link stays inside on its own; followed together they leave the release."""
    archive = package(
        tmp_path / "chain.tar.gz",
        member("a", tarfile.DIRTYPE),
        member("a/b", tarfile.SYMTYPE, linkname=".."),
        member("c", tarfile.SYMTYPE, linkname="a/b/.."),
    )
    with pytest.raises(ArchiveError):
        extract_tar(archive, str(dest), MAX_BYTES, MAX_ENTRIES)


def test_caps_on_entries_and_bytes(tmp_path, dest):
    many = package(tmp_path / "many.tar.gz", *[member(f"f{i}", data=b"x") for i in range(5)])
    with pytest.raises(ArchiveError):
        extract_tar(many, str(dest), MAX_BYTES, 4)
    big = package(tmp_path / "big.tar.gz", member("big", data=b"x" * 4096))
    fresh = dest.parent / "fresh"
    fresh.mkdir()
    with pytest.raises(ArchiveError):
        extract_tar(big, str(fresh), 4095, MAX_ENTRIES)
    assert not (fresh / "big").exists(), "refused from the header, before its data is written"


def test_a_corrupt_package_is_an_archive_error(tmp_path, dest):
    archive = tmp_path / "corrupt.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ArchiveError):
        extract_tar(str(archive), str(dest), MAX_BYTES, MAX_ENTRIES)
