# Copyright: floy contributors
# Apache License 2.0 (see the repository's pyproject.toml)
"""Unpack a release package without ever writing outside its directory.

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
  read), and a ``check`` callback called per member and per chunk for the deadline.

Standard library only, Python 3.8 compatible: this runs on the target's interpreter.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
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

    # -- members -------------------------------------------------------------------------

    def add(self, tar, member):
        self.check()
        self.entries += 1
        if self.entries > self.max_entries:
            raise ArchiveError(
                "more than %d entries (the limit, max_archive_entries)" % self.max_entries
            )
        name = member.name
        parts = member_parts(name)
        if member.isdir():
            self.add_dir(parts, member, name)
        elif member.issym():
            self.add_symlink(parts, member, name)
        elif member.islnk():
            self.add_hardlink(parts, member, name)
        elif member.isreg():
            self.add_file(tar, parts, member, name)
        else:
            kind = "a character device" if member.ischr() else (
                "a block device" if member.isblk() else (
                    "a FIFO" if member.isfifo() else "of an unsupported type"))
            raise ArchiveError("%r is %s; only files, directories and links are allowed"
                               % (name, kind))

    def add_dir(self, parts, member, name):
        if not parts:
            return  # "./": the release directory itself
        parent_fd = self.parent(parts, name)
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent_fd)
        except FileExistsError:
            st = os.stat(parts[-1], dir_fd=parent_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise ArchiveError("directory %r would replace a file or link" % name) from None
        self.dirs[tuple(parts)] = dir_mode(member.mode)

    def add_file(self, tar, parts, member, name):
        if not parts:
            raise ArchiveError("file %r has no name" % name)
        if member.issparse():
            raise ArchiveError("%r is a sparse file; sparse files are not supported" % name)
        if self.total_bytes + member.size > self.max_bytes:
            raise ArchiveError(
                "unpacks to more than %d bytes (the limit, max_unpacked_bytes), at %r"
                % (self.max_bytes, name)
            )
        parent_fd = self.parent(parts, name)
        fd = self.create(parent_fd, parts[-1], name)
        try:
            source = tar.extractfile(member)
            written = 0
            while written < member.size:
                self.check()
                chunk = source.read(min(CHUNK, member.size - written))
                if not chunk:
                    raise ArchiveError("%r is truncated" % name)
                _write_all(fd, chunk)
                written += len(chunk)
            self.total_bytes += written
            os.fchmod(fd, file_mode(member.mode))
            mtime = max(0, int(member.mtime))
            os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)

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

    def add_symlink(self, parts, member, name):
        target = member.linkname
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

    def add_hardlink(self, parts, member, name):
        if not parts:
            raise ArchiveError("hard link %r has no name" % name)
        source = member_parts(member.linkname, "hard link target")
        if not source:
            raise ArchiveError("hard link %r points at the release directory" % name)
        source_fd = self.open_dir(source[:-1], False, name)
        try:
            try:
                st = os.stat(source[-1], dir_fd=source_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise ArchiveError("hard link %r points at %r, which is not in the archive "
                                   "before it" % (name, member.linkname)) from None
            if not stat.S_ISREG(st.st_mode):
                raise ArchiveError("hard link %r must point at a regular file, not %r"
                                   % (name, member.linkname))
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


def _reversed_parts(path):
    return path.split("/")[::-1]


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def extract_tar(archive, dest, max_bytes, max_entries, check=_no_check):
    """Unpack the gzip tar ``archive`` into the empty directory ``dest``.

    Returns ``(entries, bytes)``. Raises ArchiveError for a refused or corrupt archive,
    whatever ``check`` raises (the caller's deadline), or OSError (e.g. disk full).
    ``dest`` may be left partly written on error: the caller removes it.
    """
    root_fd = os.open(dest, _DIR_FLAGS)
    job = _Extraction(root_fd, max_bytes, max_entries, check)
    try:
        try:
            # Stream mode: members are read once, in order, and never seeked back to.
            with tarfile.open(archive, "r|gz") as tar:
                for member in tar:
                    job.add(tar, member)
        except (tarfile.TarError, EOFError, zlib.error, UnicodeError) as exc:
            raise ArchiveError(str(exc) or type(exc).__name__) from None
        if job.entries == 0:
            raise ArchiveError("the package is empty")
        job.verify_symlinks()
        job.close()
        job.apply_dir_modes()
    finally:
        job.close()
        os.close(root_fd)
    return job.entries, job.total_bytes
