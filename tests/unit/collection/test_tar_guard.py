"""The tar path-traversal guard, named: a package member may never write outside its release.

tests/unit/archive_cases.py holds the full catalogue of hostile packages for
module_utils/floy_archive.extract_tar; this is the guard as floy_release's unpack phase
meets it, on an instance laid out by floy_layout: ``../`` members, absolute members and a
symlink that leads out are refused as a bad archive (not retryable), the file outside is
untouched and nothing is left in the instance once the run cleans up.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.collection._collection import fake_module, plugin

archive = plugin("module_utils.floy_archive")
layout_mod = plugin("module_utils.floy_layout")
floy_release = plugin("modules.floy_release")

ORIGINAL = b"original\n"


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"pwned\n") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


#: name -> (members written given the victim's path relative to the release, and absolute).
Build = Callable[[tarfile.TarFile, str, str], None]
HOSTILE: dict[str, tuple[Build, str]] = {
    "dotdot": (lambda tar, rel, abs_: _file(tar, rel), "contains '..'"),
    "absolute": (lambda tar, rel, abs_: _file(tar, abs_), "is an absolute path"),
    "symlink_dir_escape": (
        lambda tar, rel, abs_: (_symlink(tar, "lib", os.path.dirname(rel)),
                                _file(tar, "lib/" + os.path.basename(rel))),
        "link 'lib' points outside the release",
    ),
    "symlink_escape": (lambda tar, rel, abs_: _symlink(tar, "victim", rel),
                       "link 'victim' points outside the release"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_tar_path_traversal_guard(tmp_path: Path, case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_bytes(ORIGINAL)
    instance_dir = str(tmp_path / "floy" / "hello" / "hello-1")
    release = floy_release.Release(fake_module(
        floy_release, instance_dir=instance_dir, service="hello", instance_id="hello-1",
        version="1.0.0"))
    release.prepare_dirs()
    layout = release.layout
    # Where unpack extracts: a temp directory in releases/ (its name is made there).
    probe_dest = os.path.join(layout.releases_dir, ".floy-unpack-xxxxxxxx")
    rel = os.path.relpath(victim, probe_dest)
    package = tmp_path / f"{case}.tar.gz"
    build, needle = HOSTILE[case]
    with tarfile.open(package, "w:gz") as tar:
        build(tar, rel, str(victim))

    with pytest.raises(floy_release.ReleaseError) as caught:
        release.unpack(str(package))
    release.cleanup_temp()
    os.close(release.lock_fd)

    assert caught.value.msg.startswith("bad archive: ") and needle in caught.value.msg
    assert caught.value.retryable is False
    assert victim.read_bytes() == ORIGINAL
    assert sorted(os.listdir(outside)) == ["victim.txt"]
    assert os.listdir(layout.releases_dir) == []
    assert not layout_mod.is_complete(layout, "1.0.0")


def test_the_guard_is_extract_tar_itself(tmp_path: Path) -> None:
    """The refusal comes from module_utils/floy_archive, whoever calls it."""
    dest = tmp_path / "release"
    dest.mkdir()
    package = tmp_path / "p.tar.gz"
    with tarfile.open(package, "w:gz") as tar:
        _file(tar, "ok.txt", b"fine\n")
        _file(tar, "../escaped.txt")
    with pytest.raises(archive.ArchiveError, match=re.escape("contains '..'")):
        archive.extract_tar(str(package), str(dest), 1 << 20, 100)
    assert not (tmp_path / "escaped.txt").exists()
