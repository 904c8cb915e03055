"""The unpacker of floy_release (module_utils/floy_archive.py), member by member.

Cases and their expected outcomes live in ``archive_cases.py``: each hostile package aims
at a file outside the release, and the check is that it was refused with a clear message
and the outside file is untouched. The same cases run under every other Python on the
machine, because the module runs on the target's interpreter.
"""

from __future__ import annotations

import ast
import bz2
import io
import json
import lzma
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.unit import archive_cases
from tests.unit.archive_cases import CASES, ZIP_CASES, run_case, tamper_zip

archive = archive_cases.import_archive_module()
PLUGINS = archive_cases.COLLECTIONS / "ansible_collections/floy/release/plugins"
#: What the collection says it supports on targets (module DOCUMENTATION, README).
OLDEST_TARGET_PYTHON = (3, 8)


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(tmp_path: Path, name: str) -> None:
    ok, detail = run_case(name, tmp_path)
    assert ok, detail


@pytest.mark.parametrize("name", sorted(ZIP_CASES))
def test_zip_case(tmp_path: Path, name: str) -> None:
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


# -- zip packages and the format detection (extract_archive) ------------------------------


def _zip(path: Path, members: list[tuple[str, bytes]], **tamper: int) -> Path:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    path.write_bytes(tamper_zip(raw.getvalue(), **tamper) if tamper else raw.getvalue())
    return path


def _dest(tmp_path: Path, name: str = "dest") -> Path:
    dest = tmp_path / name
    dest.mkdir()
    return dest


def test_zip_bomb_is_stopped_by_the_streamed_bytes(tmp_path: Path) -> None:
    """A member that declares 1,000 bytes and inflates to 32 MiB (a 32 KiB package):
    refused once the bytes actually streamed pass the 4 MiB cap, not trusted to stop at
    1,000, and not written past the cap."""
    package = _zip(tmp_path / "bomb.zip", [("zeros", b"\0" * (32 << 20))], file_size=1000)
    assert package.stat().st_size < 64 << 10
    with zipfile.ZipFile(package) as zf:
        assert zf.getinfo("zeros").file_size == 1000
    dest = _dest(tmp_path)
    with pytest.raises(archive.ArchiveError, match=r"more than 4194304 bytes.*'zeros'"):
        archive.extract_zip(str(package), str(dest), 4 << 20, 10)
    assert (dest / "zeros").stat().st_size <= 4 << 20


def test_zip_declared_size_over_the_cap_is_refused_from_the_header(tmp_path: Path) -> None:
    package = _zip(tmp_path / "p.zip", [("a", b"x" * 60), ("b", b"y" * 10)],
                   file_size=0xFFFFFFF0)
    dest = _dest(tmp_path)
    with pytest.raises(archive.ArchiveError, match=r"max_unpacked_bytes\), at 'a'"):
        archive.extract_archive(str(package), str(dest), 1 << 20, 10)
    assert list(dest.iterdir()) == [], "refused from the header, before any data is written"


@pytest.mark.parametrize(("declared", "needle"), [
    (10, "'f' holds 100 bytes, more than the 10 its header declares"),
    (1000, "'f' is truncated"),
])
def test_zip_member_whose_data_disagrees_with_its_header(
        tmp_path: Path, declared: int, needle: str) -> None:
    package = _zip(tmp_path / "p.zip", [("f", b"z" * 100)], file_size=declared)
    with pytest.raises(archive.ArchiveError, match=needle):
        archive.extract_archive(str(package), str(_dest(tmp_path)), 1 << 20, 10)


def test_zip_byte_cap_counts_every_file(tmp_path: Path) -> None:
    package = _zip(tmp_path / "p.zip", [("a", b"x" * 60), ("b", b"y" * 60)])
    dest = _dest(tmp_path)
    with pytest.raises(archive.ArchiveError, match=r"more than 100 bytes.*'b'"):
        archive.extract_archive(str(package), str(dest), 100, 10)
    assert not (dest / "b").exists()


def test_zip_entry_cap(tmp_path: Path) -> None:
    """Refused from the central directory, before anything is written."""
    package = _zip(tmp_path / "p.zip", [(f"f{i}", b"") for i in range(6)])
    dest = _dest(tmp_path)
    with pytest.raises(archive.ArchiveError, match="more than 5 entries"):
        archive.extract_archive(str(package), str(dest), 1 << 20, 5)
    assert list(dest.iterdir()) == []
    assert archive.extract_archive(str(package), str(_dest(tmp_path, "again")), 1 << 20, 6) \
        == (6, 0)


def test_zip64_central_directory_is_walked_and_capped(tmp_path: Path) -> None:
    """70,000 entries (over 65,535: a zip64 end record): the cap is applied from the zip64
    directory before zipfile reads it, so nothing is written."""
    package = _zip(tmp_path / "p.zip", [(f"d{n // 1000}/f{n}", b"") for n in range(70_000)])
    assert b"PK\x06\x06" in package.read_bytes()[-200:], "a zip64 end record"
    dest = _dest(tmp_path)
    with pytest.raises(archive.ArchiveError, match="more than 69999 entries"):
        archive.extract_archive(str(package), str(dest), 1 << 20, 69_999)
    assert list(dest.iterdir()) == []
    # Unpacking 70,000 files takes 15 s here: the walk alone says the cap lets it through.
    with open(package, "rb") as fh:
        archive._check_central_directory(fh, 70_000)


def test_zip64_members_unpack(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("a.bin", "b.bin"):
            with zf.open(name, "w", force_zip64=True) as out:
                out.write(name.encode() * 5000)
    package = tmp_path / "p.zip"
    package.write_bytes(raw.getvalue())
    dest = _dest(tmp_path)
    assert archive.extract_archive(str(package), str(dest), 1 << 20, 10) == (2, 50_000)
    assert (dest / "b.bin").read_bytes() == b"b.bin" * 5000


def test_zip_central_directory_larger_than_its_entries_need(tmp_path: Path) -> None:
    """zipfile reads the whole central directory into memory: 60 KiB of comment on one
    entry is refused when two entries are allowed."""
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as zf:
        info = zipfile.ZipInfo("a")
        info.comment = b"c" * 60_000
        zf.writestr(info, b"")
    package = tmp_path / "p.zip"
    package.write_bytes(raw.getvalue())
    with pytest.raises(archive.ArchiveError, match="central directory is 60047 bytes"):
        archive.extract_archive(str(package), str(_dest(tmp_path)), 1 << 20, 2)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_zip_methods_other_than_deflate_are_refused(tmp_path: Path, method: int) -> None:
    """bzip2 and lzma decompress a whole read at once, with no bound on its output."""
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", method) as zf:
        zf.writestr("f", b"data")
    package = tmp_path / "p.zip"
    package.write_bytes(raw.getvalue())
    with pytest.raises(archive.ArchiveError, match=f"compressed with method {method}; only"):
        archive.extract_archive(str(package), str(_dest(tmp_path)), 1 << 20, 10)


def test_zip_check_runs_during_extraction(tmp_path: Path) -> None:
    package = _zip(tmp_path / "p.zip", [(f"f{i}", b"") for i in range(500)])
    dest = _dest(tmp_path)
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) > 100:
            raise Deadline()

    with pytest.raises(Deadline):
        archive.extract_archive(str(package), str(dest), 1 << 20, 1000, check)
    assert 90 < len(list(dest.iterdir())) <= 101


def test_corrupt_zip_is_a_bad_archive(tmp_path: Path) -> None:
    package = _zip(tmp_path / "p.zip", [("f", b"data" * 100)])
    data = bytearray(package.read_bytes())
    data[40:60] = b"\xff" * 20  # inside the first member's compressed data
    package.write_bytes(bytes(data))
    with pytest.raises(archive.ArchiveError):
        archive.extract_archive(str(package), str(_dest(tmp_path)), 1 << 20, 10)


@pytest.mark.parametrize(("content", "seen"), [
    (b"<!DOCTYPE html>\n<title>404 Not Found</title>", "a file starting with b'<!DOCTYPE html>"),
    (b"", "an empty file"),
    (bz2.compress(b"x" * 1024), "a bzip2 file"),
    (lzma.compress(b"x" * 1024), "an xz file"),
    (b"just some text, not an archive\n" * 40, "a file starting with b'just some text"),
], ids=["html", "empty", "bzip2", "xz", "text"])
def test_a_file_of_another_format_is_refused_naming_what_it_is(
        tmp_path: Path, content: bytes, seen: str) -> None:
    package = tmp_path / "hello-2.0.0.zip"
    package.write_bytes(content)
    dest = _dest(tmp_path)
    with pytest.raises(archive.ArchiveError) as caught:
        archive.extract_archive(str(package), str(dest), 1 << 20, 10)
    assert caught.value.msg.startswith(f"the package is {seen}"), caught.value.msg
    assert caught.value.msg.endswith(": not a tar.gz, tar or zip archive")
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_tar_and_tar_gz_through_extract_archive(tmp_path: Path, mode: str) -> None:
    """The format is told by the content: a plain tar named .tar.gz unpacks too."""
    package = tmp_path / "hello-2.0.0.tar.gz"
    with tarfile.open(package, mode, format=tarfile.PAX_FORMAT) as tar:
        archive_cases.good(tar, tmp_path / "victim", tmp_path)
    assert archive.archive_format(str(package)) == ("tar" if mode == "w" else "tar.gz")
    dest = _dest(tmp_path)
    entries, _ = archive.extract_archive(str(package), str(dest), 1 << 20, 100)
    assert entries == 12
    assert archive_cases.check_good(dest) == []


def test_a_compressed_tar_other_than_gzip_is_refused(tmp_path: Path) -> None:
    """tarfile.is_tarfile says yes to a .tar.bz2; the stream reader cannot read it."""
    package = tmp_path / "p.tar.bz2"
    with tarfile.open(package, "w:bz2") as tar:
        archive_cases.good(tar, tmp_path / "victim", tmp_path)
    with pytest.raises(archive.ArchiveError, match=r"a bzip2 file: not a tar\.gz, tar or zip"):
        archive.extract_archive(str(package), str(_dest(tmp_path)), 1 << 20, 100)


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
