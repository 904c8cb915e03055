"""Hostile and tricky release packages, with what floy's unpacker must do with each.

Standard library only, so that the same cases run under every Python on the machine (the
module runs on the target's interpreter, which may lack tarfile's extraction filters):

    python tests/unit/archive_cases.py            # prints {"case": [ok, detail], ...}

Each case writes a ``.tar.gz`` that aims at a ``victim`` file outside the release (an
existing file it tries to overwrite, next to which it tries to create one) or is fine and
must unpack exactly. ``tests/unit/test_archive.py`` runs them in-process and under the
other interpreters; ``tests/integration/test_hostile_packages.py`` deploys some for real.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
import tempfile
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


def build(name: str, path: Path, victim: Path, dest: Path) -> Path:
    """Write the package of case ``name`` to ``path``."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        CASES[name].build(tar, victim, dest)
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
    package = build(name, workdir / f"{name}.tar.gz", victim, dest)
    case = CASES[name]
    try:
        archive.extract_tar(str(package), str(dest), max_bytes, max_entries)  # type: ignore[attr-defined]
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
    for name in CASES:
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
