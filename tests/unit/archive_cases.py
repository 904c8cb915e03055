"""Hostile and tricky release packages, with what floy's unpacker must do with each.

Standard library only, so that the same cases run under every Python on the machine (the
module runs on the target's interpreter, which may lack tarfile's extraction filters):

    python tests/unit/archive_cases.py            # prints {"case": [ok, detail], ...}

Each case writes a ``.tar.gz`` (``CASES``) or a ``.zip`` (``ZIP_CASES``, unpacked through
``extract_archive``, which tells the format from the content) that aims at a ``victim``
file outside the release (an existing file it tries to overwrite, next to which it tries
to create one) or is fine and must unpack exactly. ``tests/unit/test_archive.py`` runs
them in-process and under the other interpreters;
``tests/integration/test_hostile_packages.py`` deploys some for real.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "collections"
VICTIM_TEXT = b"original contents\n"
PWNED = b"pwned\n"
#: Enough ".." to reach / from any release directory the tests use.
UP = "../" * 40


@dataclass(frozen=True)
class Case:
    """One package: how to build it, and the words the refusal must contain (None: fine)."""

    build: Callable[[tarfile.TarFile, Path, Path], None]
    refusal: str | None
    check: Callable[[Path], list[str]] | None = None


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"x\n", mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def _dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _link(tar: tarfile.TarFile, name: str, target: str, hard: bool = False) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def _special(tar: tarfile.TarFile, name: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    tar.addfile(info)


def _rel(victim: Path) -> str:
    return str(victim).lstrip("/")


def _climb(victim: Path, dest: Path) -> tuple[int, str]:
    """How many levels up from ``dest`` to the common ancestor, and the way down from
    there to the victim's directory: what an attacker who knows the layout aims with."""
    rel = os.path.relpath(victim.parent, dest).split("/")
    ups = sum(1 for part in rel if part == "..")
    return ups, "/".join(part for part in rel if part != "..")


# -- the cases ---------------------------------------------------------------------------


def dotdot(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _file(tar, "app.py")
    _file(tar, UP + _rel(victim), PWNED)


def absolute(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _file(tar, str(victim), PWNED)


def symlink_absolute(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _link(tar, "out", str(victim.parent))
    _file(tar, "out/new.txt", PWNED)


def symlink_up(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _link(tar, "out", UP + _rel(victim.parent))


def symlink_chain_hardlink(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    """``l -> .`` and ``up -> l/l/../..``: lexically inside, physically above the release;
    then a hard link through ``up`` to the victim, and a write to that hard link."""
    ups, down = _climb(victim, dest)
    _link(tar, "l", ".")
    _link(tar, "up", "l/" * ups + "../" * ups)
    _link(tar, "x", f"up/{down}/{victim.name}", hard=True)
    _file(tar, "x", PWNED)


def write_through_symlink(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    """A later member written through an earlier symlink (here one that stays inside)."""
    _dir(tar, "lib")
    _link(tar, "lib64", "lib")
    _file(tar, "lib64/libx.so", PWNED)


def symlink_then_escape(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    """A link to its own directory, then a link through it whose ``..`` climb out although
    the text of the target stays inside (only resolving over the real tree shows it)."""
    _dir(tar, "a/b")
    _link(tar, "a/b/c", ".")
    _link(tar, "d", "a/b/" + "c/" * 5 + "../" * 7)


def hardlink_outside(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _link(tar, "h", UP + _rel(victim), hard=True)
    _file(tar, "h", PWNED)


def hardlink_absolute(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _link(tar, "h", str(victim), hard=True)
    _file(tar, "h", PWNED)


def hardlink_to_symlink(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _file(tar, "a")
    _link(tar, "s", "a")
    _link(tar, "h", "s", hard=True)


def long_paths(tar: tarfile.TarFile, victim: Path, dest: Path, limit: int = 255) -> None:
    """Directories and links whose expansion passes PATH_MAX (the shape of CVE-2025-4517):
    ``os.path.realpath`` stops expanding there, so a checker using it sees the final link
    as inside; the kernel follows it to the release's parent."""
    steps = "abcdefghijklmnop"
    # Sized from where the release is unpacked, as the attack would be.
    width = max(16, (4096 - len(str(dest)) - 1) // (len(steps) + 1))
    component = "d" * min(width, limit)
    path = ""
    for step in steps:
        _dir(tar, os.path.join(path, component))
        _link(tar, os.path.join(path, step), component)
        path = os.path.join(path, component)
    linkpath = os.path.join(*steps, "l" * 254)
    _link(tar, linkpath, os.path.join(*[".."] * len(steps)))
    ups, down = _climb(victim, dest)
    _link(tar, "escape", os.path.join(linkpath, *[".."] * ups, down))
    _link(tar, "flaglink", os.path.join("escape", victim.name), hard=True)
    _file(tar, "flaglink", PWNED)
    _file(tar, "escape/newfile", PWNED)


def long_paths_shorter(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    """The same links with components short enough to pass the name-length cap."""
    long_paths(tar, victim, dest, limit=150)


def long_name(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _file(tar, "/".join(["n" * 200] * 20))


def char_device(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _special(tar, "null", tarfile.CHRTYPE)


def block_device(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _special(tar, "disk", tarfile.BLKTYPE)


def fifo(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _special(tar, "pipe", tarfile.FIFOTYPE)


def symlink_loop(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _link(tar, "a", "b")
    _link(tar, "b", "a")


def duplicate_link_over_file(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _file(tar, "conf")
    _link(tar, "conf", UP + _rel(victim))


def file_over_link(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _file(tar, "target")
    _link(tar, "conf", "target")
    _file(tar, "conf", PWNED)


def empty(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    """No members at all."""


def good(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    """What real packages hold: nested dirs, an executable, relative links inside,
    a hard link, a later copy of a file, a dangling link that stays inside."""
    _dir(tar, "./")
    _dir(tar, "bin")
    _dir(tar, "lib/tool")
    _file(tar, "lib/tool/main.py", b"print('hi')\n", 0o755)
    _link(tar, "bin/tool", "../lib/tool/main.py")
    _link(tar, "lib/current", "tool")
    _link(tar, "lib/tool/again", "../current/main.py")
    _file(tar, "VERSION", b"1\n")
    _link(tar, "VERSION.hard", "VERSION", hard=True)
    _file(tar, "notes.txt", b"old\n")
    _file(tar, "notes.txt", b"new\n")
    _link(tar, "logs", "shared-not-here/logs")


def check_good(dest: Path) -> list[str]:
    problems = []
    if (dest / "bin/tool").read_bytes() != b"print('hi')\n":
        problems.append("bin/tool does not lead to lib/tool/main.py")
    if (dest / "lib/tool/again").read_bytes() != b"print('hi')\n":
        problems.append("lib/tool/again does not resolve")
    if not os.access(dest / "lib/tool/main.py", os.X_OK):
        problems.append("the executable bit was lost")
    if os.stat(dest / "VERSION").st_ino != os.stat(dest / "VERSION.hard").st_ino:
        problems.append("VERSION.hard is not a hard link")
    if (dest / "notes.txt").read_bytes() != b"new\n":
        problems.append("the later copy of notes.txt did not win")
    if os.readlink(dest / "logs") != "shared-not-here/logs":
        problems.append("the dangling link was changed")
    return problems


def modes(tar: tarfile.TarFile, victim: Path, dest: Path) -> None:
    _dir(tar, "sgid", 0o2777)
    _file(tar, "sgid/suid", b"#!/bin/sh\n", 0o6755)
    _file(tar, "world", b"w\n", 0o666)
    _file(tar, "sticky", b"s\n", 0o1777)
    _file(tar, "unreadable", b"u\n", 0o000)


def check_modes(dest: Path) -> list[str]:
    want = {"sgid": 0o755, "sgid/suid": 0o755, "world": 0o644, "sticky": 0o755,
            "unreadable": 0o600}
    problems = []
    for name, mode in want.items():
        got = stat.S_IMODE(os.lstat(dest / name).st_mode)
        if got != mode:
            problems.append(f"{name}: mode {got:o}, expected {mode:o}")
    return problems


CASES: dict[str, Case] = {
    "dotdot": Case(dotdot, "'..'"),
    "absolute": Case(absolute, "absolute path"),
    "symlink_absolute": Case(symlink_absolute, "absolute path"),
    "symlink_up": Case(symlink_up, "points outside the release"),
    "symlink_chain_hardlink": Case(symlink_chain_hardlink, "symlink"),
    "write_through_symlink": Case(write_through_symlink, "written through 'lib64'"),
    "symlink_then_escape": Case(symlink_then_escape, "leads outside the release"),
    "hardlink_outside": Case(hardlink_outside, "'..'"),
    "hardlink_absolute": Case(hardlink_absolute, "absolute path"),
    "hardlink_to_symlink": Case(hardlink_to_symlink, "must point at a regular file"),
    "long_paths": Case(long_paths, "bytes"),
    "long_paths_shorter": Case(long_paths_shorter, "written through 'a'"),
    "long_name": Case(long_name, "bytes long"),
    "char_device": Case(char_device, "character device"),
    "block_device": Case(block_device, "block device"),
    "fifo": Case(fifo, "FIFO"),
    "symlink_loop": Case(symlink_loop, "loop"),
    "duplicate_link_over_file": Case(duplicate_link_over_file, "points outside"),
    "file_over_link": Case(file_over_link, "would replace"),
    "empty": Case(empty, "empty"),
    "good": Case(good, None, check_good),
    "modes": Case(modes, None, check_modes),
}


# -- zip cases ---------------------------------------------------------------------------
#
# The same attacks in a zip. A zip made on unix keeps the file type and mode in the top 16
# bits of ``external_attr``; a symlink's target is its member's data.


@dataclass(frozen=True)
class ZipCase:
    """One zip package: how to build it, and the words the refusal must contain (None:
    fine); ``tamper`` rewrites the finished bytes (for headers zipfile will not write)."""

    build: Callable[[zipfile.ZipFile, Path, Path], None]
    refusal: str | None
    check: Callable[[Path], list[str]] | None = None
    tamper: Callable[[bytes], bytes] | None = None


def _zentry(zf: zipfile.ZipFile, name: str, data: bytes, mode: int, system: int = 3) -> None:
    """A member made on ``system`` (3: unix, ``mode`` is the unix mode; else the
    MS-DOS attributes)."""
    info = zipfile.ZipInfo(name, date_time=(2023, 11, 14, 22, 13, 20))
    info.create_system = system
    info.external_attr = mode << 16 if system == 3 else mode
    info.compress_type = zipfile.ZIP_DEFLATED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": the duplicate cases want one
        zf.writestr(info, data)


def _zfile(zf: zipfile.ZipFile, name: str, data: bytes = b"x\n", mode: int = 0o644) -> None:
    _zentry(zf, name, data, stat.S_IFREG | mode)


def _zdir(zf: zipfile.ZipFile, name: str, mode: int = 0o755) -> None:
    _zentry(zf, name.rstrip("/") + "/", b"", stat.S_IFDIR | mode)


def _zlink(zf: zipfile.ZipFile, name: str, target: str) -> None:
    _zentry(zf, name, target.encode(), stat.S_IFLNK | 0o777)


def tamper_zip(data: bytes, flag_bits: int = 0, file_size: int | None = None) -> bytes:
    """``data`` with every member's general purpose flags OR-ed with ``flag_bits`` and, if
    given, its declared uncompressed size set to ``file_size``, in both its local header
    and its central directory header (what a hand-crafted zip can say)."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        central = zf.start_dir
    for info in infos:
        _patch_header(out, info.header_offset, 6, 22, flag_bits, file_size)
        _patch_header(out, central, 8, 24, flag_bits, file_size)
        lengths = struct.unpack_from("<3H", out, central + 28)
        central += 46 + sum(lengths)
    return bytes(out)


def _patch_header(out: bytearray, at: int, flags_at: int, size_at: int, flag_bits: int,
                  file_size: int | None) -> None:
    flags = struct.unpack_from("<H", out, at + flags_at)[0]
    struct.pack_into("<H", out, at + flags_at, flags | flag_bits)
    if file_size is not None:
        struct.pack_into("<L", out, at + size_at, file_size)


def zip_dotdot(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zfile(zf, "app.py")
    _zfile(zf, UP + _rel(victim), PWNED)


def zip_absolute(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zfile(zf, str(victim), PWNED)


def zip_symlink_up(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zlink(zf, "out", UP + _rel(victim.parent))
    _zfile(zf, "out/new.txt", PWNED)


def zip_symlink_absolute(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zlink(zf, "out", str(victim.parent))
    _zfile(zf, "out/new.txt", PWNED)


def zip_symlink_then_escape(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zdir(zf, "a/b")
    _zlink(zf, "a/b/c", ".")
    _zlink(zf, "d", "a/b/" + "c/" * 5 + "../" * 7)


def zip_write_through_symlink(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zdir(zf, "lib")
    _zlink(zf, "lib64", "lib")
    _zfile(zf, "lib64/libx.so", PWNED)


def zip_link_over_file(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    """A duplicate name: a link replacing an earlier file of the same name."""
    _zfile(zf, "conf")
    _zlink(zf, "conf", "conf.d")


def zip_file_over_link(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zfile(zf, "target")
    _zlink(zf, "conf", "target")
    _zfile(zf, "conf", PWNED)


def zip_char_device(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zentry(zf, "null", b"", stat.S_IFCHR | 0o666)


def zip_fifo(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zentry(zf, "pipe", b"", stat.S_IFIFO | 0o644)


def zip_long_name(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zfile(zf, "/".join(["n" * 200] * 20))


def zip_good(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    """What real zips hold: directory entries, an executable, relative links inside, a
    file whose directory has no entry, a later copy of a file, a dangling link inside, and
    a member made on Windows (no unix mode: 0644)."""
    _zdir(zf, "bin")
    _zdir(zf, "lib/tool")
    _zfile(zf, "lib/tool/main.py", b"print('hi')\n", 0o755)
    _zlink(zf, "bin/tool", "../lib/tool/main.py")
    _zlink(zf, "lib/current", "tool")
    _zlink(zf, "lib/tool/again", "../current/main.py")
    _zfile(zf, "static/css/site.css", b"body{}\n")
    _zfile(zf, "notes.txt", b"old\n")
    _zfile(zf, "notes.txt", b"new\n")
    _zlink(zf, "logs", "shared-not-here/logs")
    _zentry(zf, "README.txt", b"from windows\r\n", 0x20, system=0)  # 0x20: "archive"
    info = zipfile.ZipInfo("big.bin", date_time=(2023, 11, 14, 22, 13, 20))
    info.create_system, info.external_attr = 3, (stat.S_IFREG | 0o644) << 16
    zf.writestr(info, bytes(range(256)) * 1024, zipfile.ZIP_STORED)


def check_zip_good(dest: Path) -> list[str]:
    problems = []
    if (dest / "bin/tool").read_bytes() != b"print('hi')\n":
        problems.append("bin/tool does not lead to lib/tool/main.py")
    if (dest / "lib/tool/again").read_bytes() != b"print('hi')\n":
        problems.append("lib/tool/again does not resolve")
    if stat.S_IMODE(os.stat(dest / "lib/tool/main.py").st_mode) != 0o755:
        problems.append("the executable mode was lost")
    if stat.S_IMODE(os.stat(dest / "bin").st_mode) != 0o755:
        problems.append("bin/ did not keep its mode")
    if (dest / "static/css/site.css").read_bytes() != b"body{}\n":
        problems.append("a file in an unlisted directory was lost")
    if (dest / "notes.txt").read_bytes() != b"new\n":
        problems.append("the later copy of notes.txt did not win")
    if os.readlink(dest / "logs") != "shared-not-here/logs":
        problems.append("the dangling link was changed")
    readme = os.stat(dest / "README.txt")
    if stat.S_IMODE(readme.st_mode) != 0o644 or readme.st_size != 14:
        problems.append("the member made on Windows is not a 0644 file")
    if (dest / "big.bin").read_bytes() != bytes(range(256)) * 1024:
        problems.append("the stored member's data differs")
    # Zip times are local times, read as unzip reads them.
    if os.stat(dest / "notes.txt").st_mtime != time.mktime((2023, 11, 14, 22, 13, 20, 0, 0, -1)):
        problems.append("the member's time was not kept")
    return problems


def zip_modes(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zdir(zf, "sgid", 0o2777)
    _zfile(zf, "sgid/suid", b"#!/bin/sh\n", 0o6755)
    _zfile(zf, "world", b"w\n", 0o666)
    _zfile(zf, "sticky", b"s\n", 0o1777)
    _zfile(zf, "unreadable", b"u\n", 0o000)


def zip_empty(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    """No members: the file is only the end record, ``PK\\x05\\x06``."""


def zip_encrypted(zf: zipfile.ZipFile, victim: Path, dest: Path) -> None:
    _zfile(zf, "secret.txt", b"not really encrypted\n")


ZIP_CASES: dict[str, ZipCase] = {
    "zip_dotdot": ZipCase(zip_dotdot, "'..'"),
    "zip_absolute": ZipCase(zip_absolute, "absolute path"),
    "zip_symlink_up": ZipCase(zip_symlink_up, "points outside the release"),
    "zip_symlink_absolute": ZipCase(zip_symlink_absolute, "absolute path"),
    "zip_symlink_then_escape": ZipCase(zip_symlink_then_escape, "leads outside the release"),
    "zip_write_through_symlink": ZipCase(zip_write_through_symlink, "written through 'lib64'"),
    "zip_link_over_file": ZipCase(zip_link_over_file, "would replace an earlier member"),
    "zip_file_over_link": ZipCase(zip_file_over_link, "would replace"),
    "zip_char_device": ZipCase(zip_char_device, "character device"),
    "zip_fifo": ZipCase(zip_fifo, "FIFO"),
    "zip_long_name": ZipCase(zip_long_name, "bytes long"),
    "zip_empty": ZipCase(zip_empty, "empty"),
    "zip_encrypted": ZipCase(zip_encrypted, "is encrypted",
                             tamper=lambda data: tamper_zip(data, flag_bits=0x1)),
    "zip_good": ZipCase(zip_good, None, check_zip_good),
    "zip_modes": ZipCase(zip_modes, None, check_modes),
}


def build(name: str, path: Path, victim: Path, dest: Path) -> Path:
    """Write the package of case ``name`` (of CASES or ZIP_CASES) to ``path``."""
    if name in ZIP_CASES:
        return build_zip(name, path, victim, dest)
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        CASES[name].build(tar, victim, dest)
    return path


def build_zip(name: str, path: Path, victim: Path, dest: Path) -> Path:
    """Write the zip of case ``name`` of ZIP_CASES to ``path``."""
    case = ZIP_CASES[name]
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as zf:
        case.build(zf, victim, dest)
    data = raw.getvalue()
    path.write_bytes(case.tamper(data) if case.tamper else data)
    return path


def import_archive_module() -> object:
    """The collection's floy_archive module_utils, imported from this checkout."""
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    from ansible_collections.floy.release.plugins.module_utils import floy_archive

    return floy_archive


def run_case(name: str, workdir: Path, max_bytes: int = 1 << 30,
             max_entries: int = 100_000) -> tuple[bool, str]:
    """Unpack case ``name`` in ``workdir``; (whether floy did the right thing, detail)."""
    archive = import_archive_module()
    outside = workdir / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_bytes(VICTIM_TEXT)
    dest = workdir / "inst" / "releases" / ".floy-unpack-case"
    dest.mkdir(parents=True)
    is_zip = name in ZIP_CASES
    package = build(name, workdir / (f"{name}.zip" if is_zip else f"{name}.tar.gz"), victim, dest)
    case: Case | ZipCase = ZIP_CASES[name] if is_zip else CASES[name]
    # Zips through the format detection; tar.gz straight to extract_tar, as ever.
    extract = archive.extract_archive if is_zip else archive.extract_tar  # type: ignore[attr-defined]
    try:
        extract(str(package), str(dest), max_bytes, max_entries)
        outcome = ""
    except archive.ArchiveError as exc:  # type: ignore[attr-defined]
        outcome = exc.msg
    problems = []
    if victim.read_bytes() != VICTIM_TEXT:
        problems.append("the victim outside the release was overwritten")
    if sorted(p.name for p in outside.iterdir()) != ["victim.txt"]:
        problems.append("a file was created outside the release")
    if case.refusal is None:
        if outcome:
            problems.append(f"refused a good package: {outcome}")
        elif case.check is not None:
            problems.extend(case.check(dest))
    elif not outcome:
        problems.append("was not refused")
    elif case.refusal not in outcome:
        problems.append(f"refused, but the message lacks {case.refusal!r}: {outcome}")
    return not problems, "; ".join(problems) or outcome or "unpacked"


def main() -> int:
    """Run every case; print ``{name: [ok, detail]}`` and the interpreter's facts."""
    results = {}
    for name in [*CASES, *ZIP_CASES]:
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = run_case(name, Path(tmp))
    print(json.dumps({
        "python": sys.version.split()[0],
        "data_filter": hasattr(tarfile, "data_filter"),
        "results": results,
    }))
    return 0 if all(ok for ok, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
