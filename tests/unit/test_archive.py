"""The unpacker of floy_release (module_utils/floy_archive.py), member by member.

Cases and their expected outcomes live in ``archive_cases.py``: each hostile package aims
at a file outside the release, and the check is that it was refused with a clear message
and the outside file is untouched. The same cases run under every other Python on the
machine, because the module runs on the target's interpreter.
"""

from __future__ import annotations

import ast
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.unit import archive_cases
from tests.unit.archive_cases import CASES, run_case

archive = archive_cases.import_archive_module()
PLUGINS = archive_cases.COLLECTIONS / "ansible_collections/floy/release/plugins"
#: What the collection says it supports on targets (module DOCUMENTATION, README).
OLDEST_TARGET_PYTHON = (3, 8)


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(tmp_path: Path, name: str) -> None:
    ok, detail = run_case(name, tmp_path)
    assert ok, detail


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_entry_cap(tmp_path: Path) -> None:
    package = _tar(tmp_path / "p.tar.gz", [(f"f{i}", b"") for i in range(6)])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(archive.ArchiveError, match="more than 5 entries"):
        archive.extract_tar(str(package), str(dest), 1 << 20, 5)
    again = tmp_path / "again"
    again.mkdir()
    assert archive.extract_tar(str(package), str(again), 1 << 20, 6) == (6, 0)


def test_byte_cap_counts_every_file(tmp_path: Path) -> None:
    package = _tar(tmp_path / "p.tar.gz", [("a", b"x" * 60), ("b", b"y" * 60)])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(archive.ArchiveError, match=r"more than 100 bytes.*'b'"):
        archive.extract_tar(str(package), str(dest), 100, 10)
    assert not (dest / "b").exists(), "refused from the header, before any data is written"


def test_bomb_refused_from_its_header_with_the_default_cap(tmp_path: Path) -> None:
    """A header that claims 5 GiB (the data need not even be there): refused at once."""
    info = tarfile.TarInfo("huge.bin")
    info.size = 5 << 30
    raw = io.BytesIO()
    raw.write(info.tobuf(format=tarfile.GNU_FORMAT))
    raw.write(b"\0" * 4096)
    package = tmp_path / "bomb.tar.gz"
    import gzip

    package.write_bytes(gzip.compress(raw.getvalue()))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(archive.ArchiveError, match="max_unpacked_bytes"):
        archive.extract_tar(str(package), str(dest), 4 << 30, 100_000)
    assert list(dest.iterdir()) == []


def test_compression_bomb_stops_at_the_cap(tmp_path: Path) -> None:
    """32 MiB of zeros (a 32 KiB package) against a 4 MiB cap."""
    package = _tar(tmp_path / "p.tar.gz", [("zeros", b"\0" * (32 << 20))])
    assert package.stat().st_size < 64 << 10
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(archive.ArchiveError, match="more than 4194304 bytes"):
        archive.extract_tar(str(package), str(dest), 4 << 20, 10)


class Deadline(Exception):
    pass


def test_check_runs_during_extraction(tmp_path: Path) -> None:
    """The caller's deadline is checked per member (and per chunk), so a package of many
    entries cannot outlast it."""
    package = _tar(tmp_path / "p.tar.gz", [(f"f{i}", b"") for i in range(500)])
    dest = tmp_path / "dest"
    dest.mkdir()
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) > 100:
            raise Deadline()

    with pytest.raises(Deadline):
        archive.extract_tar(str(package), str(dest), 1 << 20, 1000, check)
    assert 90 < len(list(dest.iterdir())) <= 101


def test_corrupt_package_is_a_bad_archive(tmp_path: Path) -> None:
    package = tmp_path / "p.tar.gz"
    package.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 10)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(archive.ArchiveError):
        archive.extract_tar(str(package), str(dest), 1 << 20, 10)


def _other_pythons() -> list[str]:
    """Working interpreters on this machine other than the one running the tests (pyenv
    shims of versions that are not installed fail and are left out)."""
    own = str(Path(sys.executable).resolve())
    found: dict[str, str] = {}
    for candidate in ["/usr/bin/python3", *(f"python3.{minor}" for minor in range(8, 15))]:
        path = shutil.which(candidate)
        if not path:
            continue
        proc = subprocess.run([path, "-c", "import sys; print(sys.executable)"],
                              capture_output=True, text=True, timeout=30, check=False)
        real = str(Path(proc.stdout.strip()).resolve()) if proc.returncode == 0 else ""
        if real and real != own:
            found.setdefault(real, path)
    return sorted(found)


def test_cases_under_every_other_python() -> None:
    """The same cases under each other interpreter here; at least one of them lacks
    tarfile's extraction filters (PEP 706), the hosts the old fallback path was for."""
    pythons = _other_pythons()
    if not pythons:
        pytest.skip("no other Python interpreter on this machine")
    without_filter = []
    for python in pythons:
        proc = subprocess.run([python, str(Path(archive_cases.__file__))],
                              capture_output=True, text=True, timeout=120, check=False)
        report = json.loads(proc.stdout)
        failed = {k: v for k, v in report["results"].items() if not v[0]}
        assert not failed, f"{python} ({report['python']}): {failed}"
        assert proc.returncode == 0
        if not report["data_filter"]:
            without_filter.append(report["python"])
    if Path("/usr/bin/python3").exists():
        assert without_filter, "Debian's python3 (3.11.2) has no data filter: it must run"


@pytest.mark.parametrize("path", sorted(
    [*(PLUGINS / "module_utils").glob("*.py"), *(PLUGINS / "modules").glob("*.py")]))
def test_target_code_parses_as_the_oldest_supported_python(path: Path) -> None:
    ast.parse(path.read_text(), str(path), feature_version=OLDEST_TARGET_PYTHON)
