"""The tar path-traversal guard, named: a package member may never write outside its release.

tests/unit/archive_cases.py holds the full catalogue of hostile packages for
module_utils/floy_archive.extract_tar; this is the guard as floy_release's unpack phase
meets it, on an instance laid out by floy_layout: ``../`` members, absolute members and a
symlink that leads out are refused as a bad archive (not retryable), the file outside is
untouched and nothing is left in the instance once the run cleans up. The same holds for
zip packages (unpack tells the format by the content) and for a file that is no archive.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# -- zip packages ----------------------------------------------------------------------


def _zip_member(zf: zipfile.ZipFile, name: str, data: bytes, kind: int = stat.S_IFREG) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix: the mode (and the symlink type) is in external_attr
    info.external_attr = (kind | 0o644) << 16
    zf.writestr(info, data)


def _zip_dotdot(zf: zipfile.ZipFile, rel: str, abs_: str) -> None:
    _zip_member(zf, rel, b"pwned\n")


def _zip_absolute(zf: zipfile.ZipFile, rel: str, abs_: str) -> None:
    _zip_member(zf, abs_, b"pwned\n")


def _zip_symlink_escape(zf: zipfile.ZipFile, rel: str, abs_: str) -> None:
    """A unix symlink (its target is the member's data) to the victim's directory, then a
    file written through it."""
    _zip_member(zf, "lib", os.path.dirname(rel).encode(), stat.S_IFLNK)
    _zip_member(zf, "lib/" + os.path.basename(rel), b"pwned\n")


ZipBuild = Callable[[zipfile.ZipFile, str, str], None]
ZIP_HOSTILE: dict[str, tuple[ZipBuild, str]] = {
    "zip_dotdot": (_zip_dotdot, "contains '..'"),
    "zip_absolute": (_zip_absolute, "is an absolute path"),
    "zip_symlink_escape": (_zip_symlink_escape, "link 'lib' points outside the release"),
}


def _release_and_victim(tmp_path: Path) -> tuple[Any, Path, str]:
    """A prepared release of hello-1, a victim file outside it, and the victim's path
    relative to where unpack extracts (a temp directory in releases/)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_bytes(ORIGINAL)
    instance_dir = str(tmp_path / "floy" / "hello" / "hello-1")
    release = floy_release.Release(fake_module(
        floy_release, instance_dir=instance_dir, service="hello", instance_id="hello-1",
        version="1.0.0"))
    release.prepare_dirs()
    probe_dest = os.path.join(release.layout.releases_dir, ".floy-unpack-xxxxxxxx")
    return release, victim, os.path.relpath(victim, probe_dest)


def _refused_cleanly(release: Any, package: Path, victim: Path | None) -> str:
    """Unpack ``package``; assert it is a bad archive that left nothing behind; the message."""
    with pytest.raises(floy_release.ReleaseError) as caught:
        release.unpack(str(package))
    release.cleanup_temp()
    os.close(release.lock_fd)
    layout = release.layout
    assert caught.value.msg.startswith("bad archive: ")
    assert caught.value.retryable is False
    if victim is not None:
        assert victim.read_bytes() == ORIGINAL
        assert sorted(os.listdir(victim.parent)) == ["victim.txt"]
    assert os.listdir(layout.releases_dir) == []
    assert not layout_mod.is_complete(layout, "1.0.0")
    return str(caught.value.msg)


@pytest.mark.parametrize("case", sorted(ZIP_HOSTILE))
def test_zip_path_traversal_guard(tmp_path: Path, case: str) -> None:
    release, victim, rel = _release_and_victim(tmp_path)
    package = tmp_path / f"{case}.zip"
    build, needle = ZIP_HOSTILE[case]
    with zipfile.ZipFile(package, "w") as zf:
        build(zf, rel, str(victim))
    assert needle in _refused_cleanly(release, package, victim)


def test_a_package_that_is_no_archive_is_a_bad_archive(tmp_path: Path) -> None:
    """An HTML error page served with a 200 and a package's name."""
    release, _, _ = _release_and_victim(tmp_path)
    package = tmp_path / "hello-1.0.0.tar.gz"
    package.write_bytes(b"<html><body>Service Unavailable</body></html>")
    msg = _refused_cleanly(release, package, None)
    assert msg == ("bad archive: the package is a file starting with b'<html><body>Serv': "
                   "not a tar.gz, tar or zip archive")
