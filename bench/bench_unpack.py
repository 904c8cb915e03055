"""floy's unpacker against ``tarfile.extractall(filter="data")``, side by side:
``python bench/bench_unpack.py [files] [repetitions]``.

floy writes every member through directory file descriptors (no write through a symlink,
links resolved over the finished tree, caps), which costs more system calls per member
than tarfile's path-based extraction. This measures what that costs on two packages: many
small files (the worst case per member) and one big file (throughput), alternating the
two unpackers in each repetition so that machine noise hits both alike.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.unit.archive_cases import import_archive_module

archive = import_archive_module()


def small_files(path: Path, count: int) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for n in range(count):
            info = tarfile.TarInfo(f"pkg/d{n % 50}/f{n}.txt")
            data = f"file {n}\n".encode()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def big_file(path: Path, size: int) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("pkg/blob.bin")
        data = os.urandom(1 << 20) * (size >> 20)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def floy(package: Path, dest: Path) -> None:
    archive.extract_tar(str(package), str(dest), 8 << 30, 1_000_000)  # type: ignore[attr-defined]


def stdlib(package: Path, dest: Path) -> None:
    with tarfile.open(package) as tar:
        tar.extractall(dest, filter="data")


def timed(fn, package: Path, scratch: Path) -> float:  # type: ignore[no-untyped-def]
    dest = Path(tempfile.mkdtemp(dir=scratch))
    started = time.perf_counter()
    fn(package, dest)
    elapsed = time.perf_counter() - started
    shutil.rmtree(dest)
    return elapsed


def main() -> int:
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    scratch = Path(tempfile.mkdtemp(prefix="floy-bench-unpack-"))
    ratios = []
    try:
        for label, package in (
            (f"{files} small files", small_files(scratch / "small.tar.gz", files)),
            ("one 64 MiB file", big_file(scratch / "big.tar.gz", 64 << 20)),
        ):
            times: dict[str, list[float]] = {"floy": [], "tarfile data filter": []}
            for _ in range(reps):
                times["floy"].append(timed(floy, package, scratch))
                times["tarfile data filter"].append(timed(stdlib, package, scratch))
            med = {k: statistics.median(v) for k, v in times.items()}
            ratio = med["floy"] / med["tarfile data filter"]
            ratios.append(f"{label} x{ratio:.2f}")
            print(f"{label}: floy {med['floy']:.3f} s, tarfile(filter='data') "
                  f"{med['tarfile data filter']:.3f} s (median of {reps}); floy/tarfile "
                  f"x{ratio:.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"summary: unpack time floy/tarfile: {', '.join(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
