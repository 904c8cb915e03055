# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""Unpack a release package without ever writing outside its directory.

A package is a gzip tar, a plain tar or a zip, told apart by its first bytes
(``extract_archive``); all three feed the same writer, so the rules below hold for each.

floy does not hand the archive to ``tarfile.extractall``: the PEP 706 ``data`` filter is
missing on Pythons before 3.12 and on older 3.8-3.11 patch releases, and where it exists it
relies on ``os.path.realpath``, which long member paths near PATH_MAX defeated
(CVE-2025-4517). Instead every member is written through directory file descriptors:

- each parent directory is opened with ``O_NOFOLLOW | O_DIRECTORY`` from the release root,
  so no member is ever written through a symlink, whatever came earlier in the archive;
- files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a duplicate name may replace
  an earlier regular file, never a link or a directory);
- a hard link must name a regular file already unpacked, found the same way;
- symlinks must be relative, and once the whole tree is unpacked each one is resolved
  component by component over the real tree (following the links it meets, at most 40
  hops) and refused if it leads out of the release;
- devices, FIFOs and sparse files are refused; setuid, setgid, sticky and group/other
  write bits are dropped; the owner is the user running the module;
- a cap on entries and on unpacked bytes (checked from each header before its data is
  read, and again on the bytes actually streamed), and a ``check`` callback called per
  member and per chunk for the deadline.

Zip specifics: modes come from the unix attributes (``external_attr >> 16``) of members
made on unix, a unix symlink's target is its member's data, encrypted members and methods
other than stored and deflated are refused (bzip2 and lzma would decompress a whole chunk
at once, unbounded), and the central directory is walked and capped before ``zipfile``
reads it into memory.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations

import copy
import errno
import os
import posixpath
import stat
import struct
import tarfile
import time
import zipfile
import zlib

NAME_MAX = 255
#: Longest member name (bytes). Leaves room under PATH_MAX (4096) for the release directory,
#: so that every unpacked path can still be addressed by its full name later.
MAX_MEMBER_NAME = 3072
MAX_LINK_TARGET = 1024
MAX_LINK_HOPS = 40
CHUNK = 1 << 16
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
)


class ArchiveError(Exception):
    """The archive is refused; ``msg`` says which member and why."""

    def __init__(self, msg):
        super().__init__(msg)
        self.msg = msg


def _no_check():
    """Default ``check``: nothing to enforce."""


def member_parts(name, what="member"):
    """The path components of a member name; refuses absolute, ``..``, NUL and long names."""
    if not name:
        raise ArchiveError("a %s has an empty name" % what)
    if "\x00" in name:
        raise ArchiveError("%s %r contains a NUL byte" % (what, name))
    if name.startswith("/"):
        raise ArchiveError("%s %r is an absolute path" % (what, name))
    encoded = os.fsencode(name)
    if len(encoded) > MAX_MEMBER_NAME:
        raise ArchiveError(
            "%s name is %d bytes long (at most %d): %r..."
            % (what, len(encoded), MAX_MEMBER_NAME, name[:60])
        )
    parts = [part for part in name.split("/") if part not in ("", ".")]
    for part in parts:
        if part == "..":
            raise ArchiveError("%s %r contains '..'" % (what, name))
        if len(os.fsencode(part)) > NAME_MAX:
            raise ArchiveError(
                "%s %r has a path component longer than %d bytes" % (what, name[:60], NAME_MAX)
            )
    return parts


def file_mode(mode):
    """Mode of an unpacked file: no setuid/setgid/sticky, no group/other write, owner rw."""
    return (mode & 0o755) | 0o600


def dir_mode(mode):
    """Mode of an unpacked directory: as for files, and always owner rwx."""
    return (mode & 0o755) | 0o700


def _lstat(root_fd, parts):
    return os.stat("/".join(parts), dir_fd=root_fd, follow_symlinks=False)


class _Extraction:
    """One unpack into the directory open as ``root_fd``."""

    def __init__(self, root_fd, max_bytes, max_entries, check):
        self.root_fd = root_fd
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.check = check
        self.entries = 0
        self.total_bytes = 0
        self.symlinks = []
        self.dirs = {}
        # The last parent directory opened, reused while members stay in one directory.
        # Safe: a directory is never replaced or removed during the unpack.
        self._parent_key = None
        self._parent_fd = None

    def close(self):
        if self._parent_fd is not None:
            os.close(self._parent_fd)
            self._parent_fd = None

    def open_dir(self, parts, create, name):
        """An fd of the directory ``parts`` under the root, never through a symlink."""
        fd = os.dup(self.root_fd)
        try:
            for index, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise ArchiveError(
                            "%r refers to %r, which is not in the archive before it"
                            % (name, "/".join(parts))
                        ) from None
                    os.mkdir(part, 0o700, dir_fd=fd)
                    self.dirs.setdefault(tuple(parts[: index + 1]), 0o755)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise ArchiveError(
                            "%r would be written through %r, which is a symlink or a file"
                            % (name, "/".join(parts[: index + 1]))
                        ) from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def parent(self, parts, name):
        key = tuple(parts[:-1])
        if key != self._parent_key:
            self.close()
            self._parent_fd = self.open_dir(parts[:-1], True, name)
            self._parent_key = key
        return self._parent_fd

    # -- members: what _add_tar_member and _add_zip_member call, whatever the format ------

    def count(self):
        """Called once per member, before anything else: the deadline and the entry cap."""
        self.check()
        self.entries += 1
        if self.entries > self.max_entries:
            raise _too_many_entries(self.max_entries)

    def add_dir(self, parts, mode, name):
        if not parts:
            return  # "./": the release directory itself
        parent_fd = self.parent(parts, name)
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent_fd)
        except FileExistsError:
            st = os.stat(parts[-1], dir_fd=parent_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise ArchiveError("directory %r would replace a file or link" % name) from None
        self.dirs[tuple(parts)] = dir_mode(mode)

    def add_file(self, parts, name, mode, mtime, declared, open_data):
        """Write a regular file of ``declared`` bytes; ``open_data()`` gives its data.

        The cap is checked from the declared size first, then on the streamed bytes: a zip
        header may lie, and the data decides.
        """
        if not parts:
            raise ArchiveError("file %r has no name" % name)
        budget = self.max_bytes - self.total_bytes
        if declared > budget:
            raise self.too_big(name)
        parent_fd = self.parent(parts, name)
        fd = self.create(parent_fd, parts[-1], name)
        try:
            source = open_data()
            try:
                written = self.copy(source, fd, budget, name)
            finally:
                source.close()
            if written < declared:
                raise ArchiveError("%r is truncated" % name)
            if written > declared:
                raise ArchiveError("%r holds %d bytes, more than the %d its header declares"
                                   % (name, written, declared))
            self.total_bytes += written
            os.fchmod(fd, file_mode(mode))
            mtime = max(0, int(mtime))
            os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)

    def copy(self, source, fd, budget, name):
        """Copy ``source`` to ``fd`` until its end; refused once past ``budget`` bytes."""
        written = 0
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                return written
            self.check()
            written += len(chunk)
            if written > budget:
                raise self.too_big(name)
            _write_all(fd, chunk)

    def too_big(self, name):
        return ArchiveError(
            "unpacks to more than %d bytes (the limit, max_unpacked_bytes), at %r"
            % (self.max_bytes, name)
        )

    def create(self, parent_fd, leaf, name):
        try:
            return os.open(leaf, _FILE_FLAGS, 0o600, dir_fd=parent_fd)
        except FileExistsError:
            st = os.stat(leaf, dir_fd=parent_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise ArchiveError("file %r would replace a directory or link" % name) from None
            # A later copy of a file (tar --append) replaces the earlier one, as tar does.
            os.unlink(leaf, dir_fd=parent_fd)
            return os.open(leaf, _FILE_FLAGS, 0o600, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ArchiveError("file %r would replace a link" % name) from None
            raise

    def add_symlink(self, parts, target, name):
        if not parts:
            raise ArchiveError("link %r has no name" % name)
        if not target or "\x00" in target:
            raise ArchiveError("link %r has an empty or invalid target" % name)
        if target.startswith("/"):
            raise ArchiveError("link %r points to the absolute path %r" % (name, target))
        if len(os.fsencode(target)) > MAX_LINK_TARGET:
            raise ArchiveError("link %r has a target longer than %d bytes"
                               % (name, MAX_LINK_TARGET))
        lexical = posixpath.normpath(posixpath.join(*(["."] + parts[:-1] + [target])))
        if lexical == ".." or lexical.startswith("../"):
            raise ArchiveError("link %r points outside the release (%r)" % (name, target))
        parent_fd = self.parent(parts, name)
        try:
            os.symlink(target, parts[-1], dir_fd=parent_fd)
        except FileExistsError:
            raise ArchiveError("link %r would replace an earlier member" % name) from None
        self.symlinks.append(parts)

    def add_hardlink(self, parts, linkname, name):
        if not parts:
            raise ArchiveError("hard link %r has no name" % name)
        source = member_parts(linkname, "hard link target")
        if not source:
            raise ArchiveError("hard link %r points at the release directory" % name)
        source_fd = self.open_dir(source[:-1], False, name)
        try:
            try:
                st = os.stat(source[-1], dir_fd=source_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise ArchiveError("hard link %r points at %r, which is not in the archive "
                                   "before it" % (name, linkname)) from None
            if not stat.S_ISREG(st.st_mode):
                raise ArchiveError("hard link %r must point at a regular file, not %r"
                                   % (name, linkname))
            parent_fd = self.parent(parts, name)
            try:
                os.link(source[-1], parts[-1], src_dir_fd=source_fd, dst_dir_fd=parent_fd,
                        follow_symlinks=False)
            except FileExistsError:
                raise ArchiveError("hard link %r would replace an earlier member"
                                   % name) from None
        finally:
            os.close(source_fd)

    # -- after the last member -----------------------------------------------------------

    def verify_symlinks(self):
        """Resolve every symlink over the finished tree; refuse one that leaves it."""
        for parts in self.symlinks:
            self.check()
            self.resolve(parts)

    def resolve(self, link_parts):
        name = "/".join(link_parts)
        stack = list(link_parts[:-1])
        pending = _reversed_parts(os.readlink(name, dir_fd=self.root_fd))
        hops = 1
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if not stack:
                    raise ArchiveError("link %r leads outside the release" % name)
                stack.pop()
                continue
            candidate = stack + [part]
            try:
                st = _lstat(self.root_fd, candidate)
            except (FileNotFoundError, NotADirectoryError):
                stack.append(part)  # dangling: nothing on disk to follow from here
                continue
            except OSError as exc:
                raise ArchiveError("link %r cannot be resolved safely (%s)"
                                   % (name, exc.strerror)) from None
            if not stat.S_ISLNK(st.st_mode):
                stack.append(part)
                continue
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise ArchiveError("link %r is a loop or a chain of more than %d links"
                                   % (name, MAX_LINK_HOPS))
            target = os.readlink("/".join(candidate), dir_fd=self.root_fd)
            if target.startswith("/"):
                raise ArchiveError("link %r leads to the absolute path %r" % (name, target))
            pending.extend(_reversed_parts(target))

    def apply_dir_modes(self):
        """Set directory modes last, deepest first, so read-only ones never block a write."""
        for parts in sorted(self.dirs, key=len, reverse=True):
            fd = self.open_dir(list(parts), False, "/".join(parts))
            try:
                os.fchmod(fd, self.dirs[parts])
            finally:
                os.close(fd)


def _too_many_entries(max_entries):
    return ArchiveError("more than %d entries (the limit, max_archive_entries)" % max_entries)


def _unsupported_type(name, kind):
    return ArchiveError("%r is %s; only files, directories and links are allowed"
                        % (name, kind))


def _reversed_parts(path):
    return path.split("/")[::-1]


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _extract(dest, max_bytes, max_entries, check, feed):
    """Unpack into ``dest`` what ``feed(job)`` adds, then check links and set dir modes."""
    root_fd = os.open(dest, _DIR_FLAGS)
    job = _Extraction(root_fd, max_bytes, max_entries, check)
    try:
        feed(job)
        if job.entries == 0:
            raise ArchiveError("the package is empty")
        job.verify_symlinks()
        job.close()
        job.apply_dir_modes()
    finally:
        job.close()
        os.close(root_fd)
    return job.entries, job.total_bytes


def extract_archive(archive, dest, max_bytes, max_entries, check=_no_check):
    """Unpack the package ``archive`` (tar.gz, tar or zip, told by its first bytes).

    Same arguments, result and errors as ``extract_tar``; a file of any other format is an
    ArchiveError naming what it looks like.
    """
    kind = archive_format(archive)
    if kind == "zip":
        return extract_zip(archive, dest, max_bytes, max_entries, check)
    mode = "r|gz" if kind == "tar.gz" else "r|"
    return _extract(dest, max_bytes, max_entries, check,
                    lambda job: _feed_tar(job, archive, mode))


#: First bytes of formats a package URL may serve by mistake, named when refused.
_OTHER_FORMATS = (
    (b"BZh", "a bzip2 file"),
    (b"\xfd7zXZ\x00", "an xz file"),
    (b"\x28\xb5\x2f\xfd", "a zstd file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
)


def archive_format(archive):
    """``"tar.gz"``, ``"tar"`` or ``"zip"``, from the content of ``archive``, never its name."""
    with open(archive, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip; PK 05 06: an empty one
        return "zip"
    if not head:
        seen = "an empty file"
    else:
        seen = "a file starting with %r" % head
        for magic, what in _OTHER_FORMATS:
            if head.startswith(magic):
                seen = what
                break
        else:
            # After the magics above: is_tarfile also accepts compressed tars, which the
            # plain stream reader ("r|") cannot read.
            if tarfile.is_tarfile(archive):
                return "tar"
    raise ArchiveError("the package is %s: not a tar.gz, tar or zip archive" % seen)


# -- tar -----------------------------------------------------------------------------------


def extract_tar(archive, dest, max_bytes, max_entries, check=_no_check):
    """Unpack the gzip tar ``archive`` into the empty directory ``dest``.

    Returns ``(entries, bytes)``. Raises ArchiveError for a refused or corrupt archive,
    whatever ``check`` raises (the caller's deadline), or OSError (e.g. disk full).
    ``dest`` may be left partly written on error: the caller removes it.
    """
    return _extract(dest, max_bytes, max_entries, check,
                    lambda job: _feed_tar(job, archive, "r|gz"))


def _feed_tar(job, archive, mode):
    try:
        # Stream mode: members are read once, in order, and never seeked back to.
        with tarfile.open(archive, mode) as tar:
            for member in tar:
                _add_tar_member(job, tar, member)
    except (tarfile.TarError, EOFError, zlib.error, UnicodeError) as exc:
        raise ArchiveError(str(exc) or type(exc).__name__) from None


def _add_tar_member(job, tar, member):
    job.count()
    name = member.name
    parts = member_parts(name)
    if member.isdir():
        job.add_dir(parts, member.mode, name)
    elif member.issym():
        job.add_symlink(parts, member.linkname, name)
    elif member.islnk():
        job.add_hardlink(parts, member.linkname, name)
    elif member.isreg():
        if parts and member.issparse():
            raise ArchiveError("%r is a sparse file; sparse files are not supported" % name)
        job.add_file(parts, name, member.mode, member.mtime, member.size,
                     lambda: tar.extractfile(member))
    else:
        kind = "a character device" if member.ischr() else (
            "a block device" if member.isblk() else (
                "a FIFO" if member.isfifo() else "of an unsupported type"))
        raise _unsupported_type(name, kind)


# -- zip -----------------------------------------------------------------------------------

_ZIP_END = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ZIP_CENTRAL = struct.Struct("<4s6H3L5H2L")  # one central directory header
#: Central directory bytes allowed per permitted entry (header, a name at the cap, and room
#: for extra fields and a comment): ``zipfile`` reads the whole directory into memory.
_CENTRAL_BYTES_PER_ENTRY = _ZIP_CENTRAL.size + MAX_MEMBER_NAME + 1024
_ZIP_UNIX = 3  # create_system of a member made on unix
_ZIP_ENCRYPTED = 0x1  # general purpose flag bit 0
#: Members are streamed to their real end, not to the size their header declares.
_UNBOUNDED = 1 << 62
_ZIP_SPECIAL = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
}


def extract_zip(archive, dest, max_bytes, max_entries, check=_no_check):
    """Unpack the zip ``archive`` into the empty directory ``dest``, under the same rules,
    caps, result and errors as ``extract_tar``."""
    return _extract(dest, max_bytes, max_entries, check,
                    lambda job: _feed_zip(job, archive))


def _feed_zip(job, archive):
    try:
        with open(archive, "rb") as fh:
            _check_central_directory(fh, job.max_entries)
            with zipfile.ZipFile(fh) as zf:
                for info in zf.infolist():
                    _add_zip_member(job, zf, info)
    except (zipfile.BadZipFile, EOFError, zlib.error, UnicodeError, struct.error,
            NotImplementedError) as exc:
        raise ArchiveError(str(exc) or type(exc).__name__) from None


def _check_central_directory(fh, max_entries):
    """Refuse a central directory of more than ``max_entries`` entries, or larger than
    they can need, before ``zipfile`` reads it whole; found as ``zipfile`` finds it."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    tail_size = min(size, _ZIP_END.size + 0xFFFF)  # the record, then a comment of <64 KiB
    fh.seek(size - tail_size)
    tail = fh.read(tail_size)
    at = len(tail) - _ZIP_END.size
    if not (at >= 0 and tail[at:at + 4] == b"PK\x05\x06" and tail[-2:] == b"\0\0"):
        at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _ZIP_END.size > len(tail):
        raise ArchiveError("a zip without an end of central directory record")
    end = size - tail_size + at
    directory_size = _ZIP_END.unpack_from(tail, at)[5]
    directory_end = end
    if end >= _ZIP64_LOCATOR.size + _ZIP64_END.size:
        fh.seek(end - _ZIP64_LOCATOR.size - _ZIP64_END.size)
        zip64 = fh.read(_ZIP64_END.size + _ZIP64_LOCATOR.size)
        locator = zip64[_ZIP64_END.size:_ZIP64_END.size + 4]
        if locator == b"PK\x06\x07" and zip64[:4] == b"PK\x06\x06":
            directory_size = _ZIP64_END.unpack_from(zip64)[8]
            directory_end = end - _ZIP64_LOCATOR.size - _ZIP64_END.size
    if directory_size > max_entries * _CENTRAL_BYTES_PER_ENTRY:
        raise ArchiveError("the zip's central directory is %d bytes, more than %d entries "
                           "(the limit, max_archive_entries) can need"
                           % (directory_size, max_entries))
    fh.seek(max(0, directory_end - directory_size))
    left = directory_size
    entries = 0
    while left >= _ZIP_CENTRAL.size:
        header = fh.read(_ZIP_CENTRAL.size)
        if len(header) < _ZIP_CENTRAL.size or header[:4] != b"PK\x01\x02":
            return  # not what it claims: zipfile says why
        entries += 1
        if entries > max_entries:
            raise _too_many_entries(max_entries)
        fields = _ZIP_CENTRAL.unpack(header)
        skip = fields[10] + fields[11] + fields[12]  # name, extra field, comment
        fh.seek(skip, os.SEEK_CUR)
        left -= _ZIP_CENTRAL.size + skip


def _add_zip_member(job, zf, info):
    job.count()
    name = info.filename
    parts = member_parts(name)
    if info.flag_bits & _ZIP_ENCRYPTED:
        raise ArchiveError("%r is encrypted; encrypted members are not supported" % name)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ArchiveError("%r is compressed with method %d; only stored and deflated "
                           "members are supported" % (name, info.compress_type))
    unix = info.external_attr >> 16 if info.create_system == _ZIP_UNIX else 0
    kind = stat.S_IFMT(unix)
    if name.endswith("/") or kind == stat.S_IFDIR:
        job.add_dir(parts, stat.S_IMODE(unix) if unix else 0o755, name)
    elif kind == stat.S_IFLNK:
        job.add_symlink(parts, _zip_link_target(zf, info, name), name)
    elif kind in (0, stat.S_IFREG):
        job.add_file(parts, name, stat.S_IMODE(unix) if unix else 0o644, _zip_mtime(info),
                     info.file_size, lambda: _open_zip_member(zf, info))
    else:
        raise _unsupported_type(name, _ZIP_SPECIAL.get(kind, "of an unsupported type"))


def _open_zip_member(zf, info):
    """The member's data to the end of its compressed stream (``zipfile`` would stop at
    the declared size), still checked against its CRC there."""
    unbounded = copy.copy(info)
    unbounded.file_size = _UNBOUNDED
    return zf.open(unbounded)


def _zip_link_target(zf, info, name):
    if info.file_size > MAX_LINK_TARGET:
        raise ArchiveError("link %r has a target longer than %d bytes" % (name, MAX_LINK_TARGET))
    source = _open_zip_member(zf, info)
    try:
        data = source.read(MAX_LINK_TARGET + 1)
    finally:
        source.close()
    if len(data) > MAX_LINK_TARGET:
        raise ArchiveError("link %r has a target longer than %d bytes" % (name, MAX_LINK_TARGET))
    if len(data) != info.file_size:
        raise ArchiveError("link %r holds %d bytes, not the %d its header declares"
                           % (name, len(data), info.file_size))
    return os.fsdecode(data)


def _zip_mtime(info):
    """The member's modification time: zip stores local time, as unzip reads it."""
    try:
        return time.mktime((*info.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return 0
