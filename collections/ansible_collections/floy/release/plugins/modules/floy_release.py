#!/usr/bin/python
# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""floy_release: install, switch, restart and health-check one release of one instance."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: floy_release
short_description: Release one version of a service instance in a single module execution
description:
  - Does the whole per-instance release of floy in one module run, because every
    Ansible task costs a round trip and a forked process per host.
  - Fetches an HTTPS package with certificate verification (and an optional
    sha256 check), unpacks it into a temporary directory inside C(releases/),
    renames it to C(releases/<version>), switches the C(current) symlink
    atomically, runs the restart command and checks health over HTTP.
  - When the restart command or the health check of the new release fails, switches
    C(current) back to the previous release once and restarts it, so the previous version
    serves again, and fails with C(retryable=false) - a release that does not come up is
    not worth downloading, switching and restarting again. With I(health_retries), the
    restart and health check are first re-run in place (no new download, no switch back
    in between).
  - If C(releases/<version>) is already installed and complete, only switches
    and restarts (the rollback fast path).
  - Host layout, under I(instance_dir) -
    C(releases/<version>/), C(current -> releases/<version>), C(shared/),
    C(.floy/state.json) and C(.floy/releases/<version>.json) (the record that
    a release directory is complete, written before the directory is renamed in).
  - While the restart command runs, its process group is recorded in
    C(.floy/restart-running.json); if this module is killed, the next release or probe
    of the instance stops what is left of it.
  - Only the Python standard library is needed on the target.
version_added: "0.1.0"
# Not on GitHub yet, so no handle: "!UNKNOWN" is validate-modules' form for that.
author: floy contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports whether a release (or a restart) would happen; only reads the host.
  diff_mode:
    support: none
  platform:
    platforms: linux
    details: Reads C(/proc) to find what is left of a restart command's process group.
seealso:
  - module: floy.release.floy_probe
    description: Which release an instance runs, read by the same rules this module writes by.
  - plugin: floy.release.floy
    plugin_type: inventory
    description: floy's instance registry as an inventory.
options:
  instance_dir:
    description: Directory of the instance, C(<floy_root>/<service>/<instance_id>).
    type: path
    required: true
  service:
    description: Service name. Letters, digits, C(.), C(_), C(+), C(-); at most 128 characters.
    type: str
    required: true
  instance_id:
    description: Instance ID, same pattern as I(service).
    type: str
    required: true
  version:
    description:
      - Version to release, same pattern as I(service). Never contains C(..).
      - Required unless I(to_previous) is set.
    type: str
    default: ""
  to_previous:
    description:
      - With an empty I(version), release the version this instance ran before its current
        one, as C(.floy/state.json) records it (the rollback of ansistrano without a
        version). Fails, changing nothing, when none is recorded or its release is no
        longer complete on the host and no I(package_url) names it.
      - The result's C(version) is the version chosen.
    type: bool
    default: false
    version_added: "0.2.0"
  phases:
    description:
      - Which phases of the release this run does, in order - C(fetch) (download or copy,
        unpack, link shared paths, record the release complete), C(switch) (link shared
        paths, switch C(current), restart, health check, switch back on failure) and
        C(cleanup) (remove releases beyond I(keep_releases)).
      - The default does all three in one module execution. The role splits them only
        when hooks are set, to run the hooks between them. An empty list changes nothing
        and reports the instance (the role's last step after a trailing hook).
      - A run without C(fetch) fails, changing nothing, when the release is not complete
        on the host.
    type: list
    elements: str
    choices: [fetch, switch, cleanup]
    default: [fetch, switch, cleanup]
    version_added: "0.2.0"
  final:
    description:
      - Whether this run ends the release of the instance; returned as C(final). floy
        completes an instance on the result of a final run only (the earlier runs of a
        release split into phases report C(final=false)).
    type: bool
    default: true
    version_added: "0.2.0"
  shared_paths:
    description:
      - Directories kept across releases (ansistrano's C(ansistrano_shared_paths)) -
        C(releases/<version>/<path>) becomes a relative symlink to C(shared/<path>),
        replacing what the package had there; C(shared/<path>) is created when missing.
      - Relative paths without C(.) or C(..) components. Linked when a release is
        installed and again before it is switched to.
    type: list
    elements: str
    default: []
    version_added: "0.2.0"
  shared_files:
    description:
      - Files kept across releases (ansistrano's C(ansistrano_shared_files)), linked like
        I(shared_paths); their directory in C(shared/) is created, the file itself is not.
    type: list
    elements: str
    default: []
    version_added: "0.2.0"
  package_path:
    description:
      - A package file already on the host (the role copies a file from the controller
        there, or archives a git ref there), used instead of I(package_url). Its sha256 is
        checked against I(package_sha256) like a download's.
      - The release's record names no URL, so a pruned release made from it cannot be
        fetched again without a new package.
    type: path
    default: ""
    version_added: "0.2.0"
  deploy_id:
    description: ID of the floy run, recorded in C(state.json).
    type: str
    default: ""
  package_url:
    description:
      - HTTPS URL of the C(.tar.gz), C(.tar) or C(.zip) package (its format is told by its
        content, not its name). Other schemes are refused, redirects to them too.
      - May be empty when the version is already installed on the host, or when
        a record of an earlier install of the version names its URL.
    type: str
    default: ""
  package_sha256:
    description: Expected hex sha256 of the package. Empty means not checked.
    type: str
    default: ""
  ca_bundle:
    description: CA bundle (PEM) to verify the package server. Empty means the system trust store.
    type: path
    default: ""
  headers:
    description: Extra HTTP headers for the download (e.g. an authorization token).
    type: dict
    default: {}
  timeout:
    description: Overall deadline in seconds for download, unpack, restart and health check.
    type: int
    default: 300
  restart_command:
    description:
      - Shell command run with C(/bin/sh -c) in the new release directory, in its
        own session, output appended to C(shared/floy-restart.log).
      - Its environment has C(FLOY_SERVICE), C(FLOY_INSTANCE_ID), C(FLOY_VERSION),
        C(FLOY_PORT), C(FLOY_INSTANCE_DIR), C(FLOY_RELEASE_DIR), C(FLOY_SHARED_DIR)
        and C(FLOY_PYTHON).
      - If the deadline passes while it runs, its whole process group is killed.
    type: str
    default: ""
  port:
    description: Port of the instance. 0 disables the health check.
    type: int
    default: 0
  health_path:
    description: HTTP path of the health check. Empty disables it.
    type: str
    default: /health
  health_host:
    description: Host the health check connects to.
    type: str
    default: 127.0.0.1
  health_timeout:
    description: Seconds to wait for a healthy answer, still bounded by I(timeout).
    type: int
    default: 30
  health_expect:
    description: Substring the health response body must contain (e.g. the version).
    type: str
    default: ""
  health_retries:
    description:
      - How many more times to run the restart command and the health check of the new
        release when it does not come up (the restart command fails or the health check
        does not pass), before switching back. In place - nothing is downloaded or
        switched again, and I(timeout) still bounds the whole run.
      - 0 (the default) switches back after the first failed start.
    type: int
    default: 0
    version_added: "0.2.0"
  health_retry_delay:
    description: Seconds between two starts of the new release under I(health_retries).
    type: int
    default: 2
    version_added: "0.2.0"
  keep_releases:
    description: Number of releases to keep; the current and previous ones are always kept.
    type: int
    default: 5
  reuse_release:
    description: Reuse a complete C(releases/<version>) instead of downloading again.
    type: bool
    default: true
  force:
    description: Download and reinstall even if the version is installed and current.
    type: bool
    default: false
  allowed_hosts:
    description:
      - Hosts packages may be fetched from. Empty means any host.
      - Applies to I(package_url), to a URL recorded on the host, and to every redirect hop.
    type: list
    elements: str
    default: []
    version_added: "0.2.0"
  max_unpacked_bytes:
    description:
      - Most bytes a package may download and unpack to (4 GiB by default); larger ones
        are refused before their data is written.
    type: int
    default: 4294967296
    version_added: "0.2.0"
  max_archive_entries:
    description: Most entries (files, directories, links) a package may hold.
    type: int
    default: 100000
    version_added: "0.2.0"
notes:
  - Packages are unpacked member by member through directory file descriptors, never
    through a symlink; absolute paths, C(..), links leading out of the release, devices
    and FIFOs are refused, and setuid, setgid and group/other write bits are dropped.
  - Redirects are followed only to HTTPS URLs that pass the same checks; I(headers) are
    sent only to the origin (scheme, host, port) of the URL they were given for.
  - The deadline I(timeout) covers the whole download and unpack, not each read.
  - Check mode reports whether a release would happen without touching the host.
  - Concurrent runs on one instance are refused (a lock file in C(.floy/)).
"""

EXAMPLES = r"""
- name: Release 2.0.0 of hello on instance hello-1
  floy.release.floy_release:
    instance_dir: /opt/floy/hello/hello-1
    service: hello
    instance_id: hello-1
    version: 2.0.0
    package_url: https://packages.example.com/hello-2.0.0.tar.gz
    package_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    restart_command: bin/restart
    port: 8080
    health_expect: '"version": "2.0.0"'

- name: Roll back to 1.0.0 (installed already, so no download)
  floy.release.floy_release:
    instance_dir: /opt/floy/hello/hello-1
    service: hello
    instance_id: hello-1
    version: 1.0.0
    restart_command: bin/restart
    port: 8080
"""

RETURN = r"""
version:
  description: The version asked for.
  returned: always
  type: str
current_version:
  description: The version C(current) points at when the module ends, empty if none.
  returned: always
  type: str
previous_version:
  description: The version C(current) pointed at before a successful switch (else as recorded).
  returned: always
  type: str
phase:
  description: >-
    Last phase reached - validate, fetch, unpack, switch, restart, health,
    switch_back, prune or done.
  returned: always
  type: str
downloaded:
  description: Whether the package was downloaded in this run.
  returned: always
  type: bool
sha256:
  description: sha256 of the package (downloaded, or recorded for a reused release).
  returned: always
  type: str
  version_added: "0.2.0"
release_dir:
  description: Path of C(releases/<version>).
  returned: always
  type: str
retryable:
  description: >-
    True for transient faults of the fetch and the connection (connection errors and
    resets, socket timeouts, HTTP 5xx, 408 and 429) and a busy instance, which running
    the module again can cure (a complete C(releases/<version>) is then reused, not
    downloaded again); false for everything else - a new release whose restart command
    or health check failed (already switched back), HTTP 4xx, sha256 mismatch, bad
    archive, bad input, a cancel and the deadline.
  returned: always
  type: bool
final:
  description: The I(final) option as given - whether this run ends the instance's release.
  returned: always
  type: bool
  version_added: "0.2.0"
health_attempts:
  description: >-
    How many times the restart command and health check of the release ran in this
    run - 0 when they were not reached, at most 1 + I(health_retries).
  returned: always
  type: int
  version_added: "0.2.0"
msg:
  description: What happened. A deadline failure reads C(timed out after N s) then optional detail.
  returned: always
  type: str
timings:
  description: Seconds spent per phase.
  returned: always
  type: dict
"""

# Ansible modules put the documentation first; the imports follow (hence E402).
# Stdlib only, and Python 3.8 compatible: this runs on the target's interpreter.
import contextlib  # noqa: E402
import errno  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.floy.release.plugins.module_utils.floy_archive import (  # noqa: E402
    ArchiveError,
    extract_archive,
)
from ansible_collections.floy.release.plugins.module_utils.floy_cancel import (  # noqa: E402
    CURRENT_PHASE,
    Cancelled,
    on_sigterm,
    watch_controller,
)
from ansible_collections.floy.release.plugins.module_utils.floy_download import (  # noqa: E402
    FetchError,
    FetchTimeout,
    check_url,
    deadline_timer,
    download,
    safe_url,
)
from ansible_collections.floy.release.plugins.module_utils.floy_errors import (  # noqa: E402
    DeadlineExceeded,
    ReleaseError,
    StartFailed,
)
from ansible_collections.floy.release.plugins.module_utils.floy_health import (  # noqa: E402
    check_health,
    health_url,
    retry_start,
)
from ansible_collections.floy.release.plugins.module_utils.floy_install import (  # noqa: E402
    install_release,
    prune_releases,
    undo_install,
)
from ansible_collections.floy.release.plugins.module_utils.floy_layout import (  # noqa: E402
    LOCK_WAIT,
    NAME_RE,
    TMP_PREFIX,
    InstanceLayout,
    NotASymlink,
    clear_leftovers,
    is_complete,
    keep_state_before,
    link_target,
    lock_exclusive,
    make_directories,
    read_current,
    read_json,
    read_record,
    remove_path,
    restore_state_before,
    switch_current,
    utc_now,
    write_json_atomic,
)
from ansible_collections.floy.release.plugins.module_utils.floy_process_groups import (  # noqa: E402
    stop_orphaned_restart,
)
from ansible_collections.floy.release.plugins.module_utils.floy_restart import (  # noqa: E402
    restart_environment,
    run_restart,
)
from ansible_collections.floy.release.plugins.module_utils.floy_shared import (  # noqa: E402
    SharedPathError,
    check_shared,
    link_shared,
)

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# After a failed release the previous one is restarted even though the deadline
# has passed: getting the old version serving again matters more.
RECOVERY_BUDGET = 30.0
# Caps on what one package may unpack to (operator-settable; see DOCUMENTATION).
DEFAULT_MAX_UNPACKED_BYTES = 4 << 30
DEFAULT_MAX_ARCHIVE_ENTRIES = 100000
# The phases of a release, in order (the role runs them apart only around hooks).
PHASES = ("fetch", "switch", "cleanup")


class Release:
    """One release of one instance; ``run`` returns the result dict or raises ReleaseError."""

    def __init__(self, module):
        self.module = module
        p = module.params
        self.p = p
        self.started = time.monotonic()
        self.deadline = self.started + p["timeout"]
        self.layout = InstanceLayout(p["instance_dir"])
        self.set_version(p["version"])
        self.shared = []
        self.phase = "validate"
        self.phase_started = self.started
        self.timings = {}
        self.changed = False
        self.downloaded = False
        self.sha256 = ""
        self.current_version = ""
        self.previous_version = ""
        self.temp_paths = []
        self.lock_fd = None
        self.state_written = False
        self.health_attempts = 0

    def set_version(self, version):
        """The version this run releases (chosen late with ``to_previous``)."""
        self.version = version
        self.release_dir = self.layout.release_dir(version) if version else ""
        self.record_path = self.layout.record_path(version) if version else ""

    # -- bookkeeping -----------------------------------------------------------------

    def enter(self, phase):
        now = time.monotonic()
        self.timings[self.phase] = round(
            self.timings.get(self.phase, 0.0) + now - self.phase_started, 3
        )
        self.phase = phase
        self.phase_started = now
        CURRENT_PHASE[0] = phase

    def remaining(self):
        return self.deadline - time.monotonic()

    def check_deadline(self, detail):
        if self.remaining() <= 0:
            raise DeadlineExceeded(self.p["timeout"], detail)

    def result(self, msg, retryable=False):
        self.enter(self.phase)
        return dict(
            changed=self.changed,
            version=self.version,
            current_version=self.read_current()[1],
            previous_version=self.previous_version,
            phase=self.phase,
            downloaded=self.downloaded,
            sha256=self.sha256,
            release_dir=self.release_dir,
            retryable=retryable,
            final=self.p["final"],
            health_attempts=self.health_attempts,
            msg=msg,
            timings=self.timings,
        )

    def cleanup_temp(self):
        for path in self.temp_paths:
            remove_path(path)
        self.temp_paths = []

    # -- host state ------------------------------------------------------------------

    def read_current(self):
        """(raw link target or None, version it names or ""): only a valid name counts."""
        target, name = read_current(self.layout)
        return target, (name if NAME_RE.match(name) else "")

    def switch_to(self, link_target):
        """Point ``current`` at ``link_target`` atomically (None removes it)."""
        try:
            switch_current(self.layout, link_target)
        except NotASymlink as exc:
            raise ReleaseError(exc.msg) from None

    # -- phases ----------------------------------------------------------------------

    def validate(self):
        p = self.p
        names = ("service", "instance_id", "version")
        if not p["version"]:
            if not p["to_previous"]:
                raise ReleaseError("version is required (or to_previous=true with no version)")
            names = ("service", "instance_id")
        for field in names:
            value = p[field]
            if not NAME_RE.match(value) or ".." in value:
                raise ReleaseError(
                    "invalid %s %r: must match %s and must not contain '..'"
                    % (field, value, NAME_RE.pattern)
                )
        if p["timeout"] <= 0:
            raise ReleaseError("invalid timeout %d: must be positive" % p["timeout"])
        if p["health_timeout"] < 0:
            raise ReleaseError("invalid health_timeout %d" % p["health_timeout"])
        if p["health_retries"] < 0 or p["health_retry_delay"] < 0:
            raise ReleaseError(
                "invalid health_retries %d or health_retry_delay %d: must be 0 or more"
                % (p["health_retries"], p["health_retry_delay"])
            )
        if not 0 <= p["port"] <= 65535:
            raise ReleaseError("invalid port %d" % p["port"])
        if p["keep_releases"] < 1:
            raise ReleaseError("invalid keep_releases %d: must be at least 1" % p["keep_releases"])
        if p["max_unpacked_bytes"] < 1 or p["max_archive_entries"] < 1:
            raise ReleaseError("invalid max_unpacked_bytes or max_archive_entries: must be positive")
        if p["package_url"] and p["package_path"]:
            raise ReleaseError(
                "give package_url or package_path, not both (the role floy: floy_package_url,"
                " or floy_package_file or floy_git_repo)"
            )
        if p["package_url"]:
            self.check_url(p["package_url"], "package_url")
        phases = p["phases"]
        if list(phases) != [x for x in PHASES if x in phases]:
            raise ReleaseError(
                "invalid phases %s: a run does some of %s, in that order, each once"
                % (", ".join(phases) or "(none)", ", ".join(PHASES))
            )
        if phases == ["fetch", "cleanup"]:
            raise ReleaseError("invalid phases fetch, cleanup: cleanup follows a switch")
        try:
            self.shared = check_shared(p["shared_paths"], p["shared_files"])
        except SharedPathError as exc:
            raise ReleaseError(exc.msg) from None
        sha = p["package_sha256"].strip().lower()
        if sha and not SHA256_RE.match(sha):
            raise ReleaseError("invalid package_sha256: expected 64 hex digits")
        p["package_sha256"] = sha
        if p["health_path"] and not p["health_path"].startswith("/"):
            raise ReleaseError("invalid health_path %r: must start with '/'" % p["health_path"])
        if p["ca_bundle"] and not os.path.isfile(p["ca_bundle"]):
            raise ReleaseError("ca_bundle %s does not exist" % p["ca_bundle"])

    def check_url(self, url, what):
        """Apply the URL policy (HTTPS, host, port, allowed hosts) to a URL to fetch."""
        try:
            check_url(url, self.p["allowed_hosts"], what)
        except FetchError as exc:
            raise ReleaseError(exc.msg) from None

    def prepare_dirs(self):
        """Create the layout, take the instance lock, clear leftovers of killed runs."""
        if self.module.check_mode:
            return
        try:
            self._prepare_dirs()
        except OSError as exc:
            raise ReleaseError("cannot prepare %s: %s" % (self.layout.instance_dir, exc)) from None

    def _prepare_dirs(self):
        make_directories(self.layout)
        # floy never runs two releases on one instance at once, so a held lock is a release
        # that was cancelled or killed and is still cleaning up (switching back): wait a bit.
        self.lock_fd = lock_exclusive(self.layout, min(LOCK_WAIT, max(0.0, self.remaining())))
        if self.lock_fd is None:
            raise ReleaseError(
                "another floy release is still running on %s (waited %d s)"
                % (self.layout.instance_dir, LOCK_WAIT),
                retryable=True,
            )
        # Under the lock: a restart command a killed release left running is stopped, and
        # anything with the temp prefix is left over from a killed run.
        stop_orphaned_restart(self.layout.restart_record_path, self.layout.instance_dir)
        clear_leftovers(self.layout)

    def fetch(self, url, expected_sha):
        """Download ``url`` to a temp file in releases/; return (path, sha256)."""
        p = self.p
        fd, tmp = tempfile.mkstemp(
            prefix=TMP_PREFIX + "pkg-", suffix=".tar.gz", dir=self.layout.releases_dir
        )
        self.temp_paths.append(tmp)
        where = safe_url(url)
        self.check_deadline("downloading %s" % where)
        try:
            with os.fdopen(fd, "wb") as out:
                with deadline_timer(self.remaining(), lambda: "downloading %s" % where):
                    sha = download(
                        url,
                        out,
                        p["headers"],
                        p["ca_bundle"],
                        p["allowed_hosts"],
                        p["max_unpacked_bytes"],
                        max(0.1, self.remaining()),
                    )
                out.flush()
                os.fsync(out.fileno())
        except FetchTimeout as exc:
            raise DeadlineExceeded(p["timeout"], exc.detail) from None
        except FetchError as exc:
            raise ReleaseError(exc.msg, exc.retryable) from None
        except OSError as exc:
            raise ReleaseError("download failed: cannot write %s: %s" % (tmp, exc.strerror)) from None
        self.downloaded = True
        self.sha256 = sha
        if expected_sha and sha != expected_sha:
            raise ReleaseError("sha256 mismatch: expected %s, got %s" % (expected_sha, sha))
        return tmp, sha

    def unpack(self, archive):
        """Unpack ``archive`` into a new temp dir in releases/ and return its path."""
        dest = tempfile.mkdtemp(prefix=TMP_PREFIX + "unpack-", dir=self.layout.releases_dir)
        self.temp_paths.append(dest)
        try:
            with deadline_timer(self.remaining(), lambda: "unpacking"):
                extract_archive(
                    archive,
                    dest,
                    self.p["max_unpacked_bytes"],
                    self.p["max_archive_entries"],
                    lambda: self.check_deadline("unpacking"),
                )
        except FetchTimeout as exc:
            raise DeadlineExceeded(self.p["timeout"], exc.detail) from None
        except ArchiveError as exc:
            raise ReleaseError("bad archive: %s" % exc.msg) from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ReleaseError("unpack failed: no space left on device") from None
            raise ReleaseError("unpack failed: %s" % exc) from None
        os.chmod(dest, 0o755)
        return dest

    def install(self, unpacked, sha, url):
        """Move ``unpacked`` to releases/<version>, record it; return undo information."""
        is_current = self.read_current()[1] == self.version
        return install_release(
            self.layout, self.version, unpacked, sha, url, is_current, self.temp_paths
        )

    def undo_install(self, undo):
        """Remove the release this run installed; put back what it displaced."""
        undo_install(self.layout, self.version, undo)

    def restart_and_check(self):
        """Restart this release and wait for it to be healthy; the problem, or None.

        A failed start (StartFailed from the restart command, or a problem) is tried again
        in place up to health_retries times: never a new download or switch.
        """

        def start():
            self.health_attempts += 1
            self.enter("restart")
            self.restart(
                self.version, self.deadline, "restart command of %s still running" % self.version
            )
            self.enter("health")
            return self.health(self.health_deadline(), self.p["health_expect"])

        return retry_start(
            start, self.p["health_retries"], self.p["health_retry_delay"], self.remaining
        )

    def starts_note(self):
        """`` (started N times)`` after a failure when health_retries started it again."""
        if self.health_attempts > 1:
            return " (started %d times)" % self.health_attempts
        return ""

    def restart(self, version, deadline, detail_on_timeout):
        """Run the restart command in releases/<version>; raise on failure or deadline."""
        p = self.p
        if not p["restart_command"]:
            return
        env = restart_environment(
            self.layout, p["service"], p["instance_id"], version, p["port"]
        )
        run_restart(
            p["restart_command"], self.layout, version, env, deadline, p["timeout"],
            detail_on_timeout,
        )

    def health(self, deadline, expect):
        """Poll the health URL until healthy; return None or the last problem seen."""
        p = self.p
        if not p["health_path"] or not p["port"]:
            return None
        url = health_url(p["health_host"], p["port"], p["health_path"])
        return check_health(url, deadline, expect)

    def health_deadline(self):
        return min(self.deadline, time.monotonic() + self.p["health_timeout"])

    def recover(self, old_target, old_version, undo, why, keep_release=False):
        """Switch back to the release that was current, restart it, undo the install.

        ``keep_release``: the release itself is not at fault (a cancel, a lost controller):
        a release this run installed fresh stays complete in releases/, so that a retry or
        a later run reuses it instead of downloading it again. One that displaced or
        exchanged another is undone all the same.
        """
        self.enter("switch_back")
        if keep_release and undo is not None and not (undo["displaced"] or undo["exchanged"]):
            undo = None
        notes = []
        try:
            self.switch_to(old_target)
        except (OSError, ReleaseError) as exc:
            return "%s; switching back to %s failed: %s" % (why, old_version or "nothing", exc)
        with contextlib.suppress(OSError):
            restore_state_before(self.layout, self.state_written)
        if undo is not None and undo["exchanged"]:
            self.undo_install(undo)
            undo = None
        if old_version:
            recovery_deadline = time.monotonic() + RECOVERY_BUDGET
            try:
                self.restart(old_version, recovery_deadline, "restart of %s" % old_version)
                problem = self.health(recovery_deadline, "")
                if problem:
                    notes.append("%s is not healthy either: %s" % (old_version, problem))
            except ReleaseError as exc:
                notes.append("restarting %s failed: %s" % (old_version, exc.msg))
            msg = "%s; switched back to %s" % (why, old_version)
        elif old_target is None:
            msg = "%s; no previous release to switch back to" % why
        else:
            msg = "%s; switched back to %s" % (why, old_target)
        self.undo_install(undo)
        if notes:
            msg += " (%s)" % "; ".join(notes)
        return msg

    def prune(self, keep_versions):
        """Remove old releases beyond keep_releases; return the versions removed."""
        return prune_releases(self.layout, keep_versions, self.p["keep_releases"])

    # -- the whole release -----------------------------------------------------------

    def run(self):
        p = self.p
        self.validate()
        self.prepare_dirs()
        state = read_json(self.layout.state_path) or {}
        old_target, old_version = self.read_current()
        self.current_version = old_version
        self.previous_version = state.get("previous_version", "") or ""
        if not self.version:
            self.choose_previous(old_version)
        phases = p["phases"]
        if not phases:
            self.enter("done")
            return self.result("%s is current" % (old_version or "no release"))
        if phases == ["cleanup"]:
            return self.run_cleanup()
        expected_sha = p["package_sha256"]
        record = read_record(self.layout, self.version)
        complete = is_complete(self.layout, self.version)
        sha_ok = not expected_sha or (record or {}).get("sha256") == expected_sha
        reuse = complete and sha_ok and p["reuse_release"] and not p["force"]
        if "fetch" not in phases:
            # The fetch phase ran in an earlier module run (hooks in between): use its work.
            if not (complete and sha_ok):
                raise ReleaseError(
                    "release %s is not complete on this instance%s: run the fetch phase first"
                    % (self.version, " with sha256 %s" % expected_sha if expected_sha else "")
                )
            reuse = True
        if reuse:
            self.sha256 = record.get("sha256", "")
        if "switch" not in phases:
            return self.run_fetch_only(reuse, record)

        if old_version == self.version and reuse:
            return self.run_same_version(state)

        if self.module.check_mode:
            self.changed = True
            return self.result(
                "would release %s (current: %s)" % (self.version, old_version or "none")
            )

        undo = None if reuse else self.fetch_and_install(record)
        if reuse:
            # A fresh install linked them while unpacking; a reused release is checked again.
            self.link_shared(self.release_dir)

        self.enter("switch")
        new_target = link_target(self.version)
        try:
            if old_version != self.version:
                keep_state_before(self.layout)
                self.switch_to(new_target)
                self.changed = True
        except (OSError, ReleaseError) as exc:
            why = "switch failed: %s" % getattr(exc, "msg", exc)
            if old_version != self.version and self.read_current()[0] == new_target:
                # It switched before the error (a cancel landing just after the rename):
                # go back like any failure after the switch.
                raise ReleaseError(self.recover(old_target, old_version, undo, why)) from None
            self.undo_install(undo)
            raise ReleaseError(why) from None

        # A release that does not come up is not retried by running the module again (a
        # new download, switch and restart each time, alternating with the old release):
        # it is switched back once; only health_retries restart it again, in place.
        why = None
        retryable = False
        keep_release = False
        timeout = None
        try:
            self.changed = True
            if old_version != self.version:
                # state.json follows `current` at once, so that a module killed before its
                # health check leaves the two agreeing (the final write follows). The old
                # state.json was kept as a hard link, so switching back restores it by a
                # rename, which a full disk cannot refuse. Inside this try: a cancel that
                # lands here switches back like one during the restart. A full disk must
                # not fail the release here: the final write reports it.
                with contextlib.suppress(OSError):
                    self.write_state(old_version)
                    self.state_written = True
            problem = self.restart_and_check()
            if problem:
                if self.remaining() <= 0:
                    timeout = DeadlineExceeded(p["timeout"], "health check: %s" % problem)
                else:
                    why = "health check failed: %s%s" % (problem, self.starts_note())
        except DeadlineExceeded as exc:
            timeout = exc
        except StartFailed as exc:
            why = exc.msg + self.starts_note()
        except ReleaseError as exc:
            why, retryable = exc.msg, exc.retryable
            keep_release = isinstance(exc, Cancelled)
        if timeout is not None or why is not None:
            back = old_target if old_version != self.version else new_target
            back_version = old_version
            if timeout is not None:
                msg = self.recover(back, back_version, undo, "").lstrip("; ")
                detail = timeout.detail + ("; " + msg if msg else "")
                raise DeadlineExceeded(p["timeout"], detail)
            raise ReleaseError(
                self.recover(back, back_version, undo, why, keep_release), retryable
            )

        if old_version != self.version:
            self.previous_version = old_version
        try:
            self.write_state(self.previous_version)
        except OSError as exc:
            if not self.state_written:
                # state.json would name the old release while `current` is the new one:
                # switch back rather than leave the two disagreeing.
                back = old_target if old_version != self.version else new_target
                raise ReleaseError(self.recover(
                    back, old_version, undo, "cannot record the release: %s" % exc.strerror
                )) from None
            # it already names this release (written right after the switch)
        remove_path(self.layout.state_before_path)
        if undo is not None and undo["displaced"]:
            remove_path(undo["displaced"])
        removed = []
        if "cleanup" in p["phases"]:
            self.enter("prune")
            removed = self.prune({self.version, self.previous_version} - {""})
        self.enter("done")
        msg = "released %s" % self.version
        if old_version and old_version != self.version:
            msg += " (was %s)" % old_version
        if removed:
            msg += "; pruned %s" % ", ".join(sorted(removed))
        return self.result(msg)

    def choose_previous(self, current_version):
        """``to_previous``: release the version state.json records as the one before."""
        previous = self.previous_version
        if not previous or not NAME_RE.match(previous) or previous == current_version:
            raise ReleaseError(
                "no previous release is recorded on this instance (current: %s): "
                "give the version to roll back to" % (current_version or "none")
            )
        self.set_version(previous)

    def fetch_and_install(self, record):
        """Fetch (or take package_path), unpack, link shared paths and install the release
        as complete; return the undo information of the install."""
        p = self.p
        expected = p["package_sha256"]
        if p["package_path"]:
            url = ""
            self.enter("fetch")
            archive, sha = self.take_package(p["package_path"], expected)
        else:
            url = p["package_url"] or (record or {}).get("package_url", "")
            if not url:
                raise ReleaseError(
                    "release %s is not installed on this instance and no package_url was given"
                    % self.version
                )
            if not p["package_url"]:
                # The current policy applies to a URL recorded on the host, too.
                self.check_url(url, "package URL recorded on the host for %s" % self.version)
            self.enter("fetch")
            archive, sha = self.fetch(
                url, expected or ((record or {}).get("sha256", "") if not p["package_url"] else "")
            )
        self.enter("unpack")
        unpacked = self.unpack(archive)
        if not p["package_path"]:
            remove_path(archive)
            self.temp_paths.remove(archive)
        self.link_shared(unpacked)
        try:
            undo = self.install(unpacked, sha, url)
        except OSError as exc:
            raise ReleaseError("install failed: %s" % exc) from None
        self.changed = True
        return undo

    def take_package(self, path, expected_sha):
        """A package file already on the host: check it and its sha256; (path, sha256)."""
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
                    self.check_deadline("reading %s" % path)
        except OSError as exc:
            raise ReleaseError("cannot read package_path %s: %s" % (path, exc.strerror)) from None
        sha = digest.hexdigest()
        self.sha256 = sha
        if expected_sha and sha != expected_sha:
            raise ReleaseError("sha256 mismatch: expected %s, got %s" % (expected_sha, sha))
        return path, sha

    def link_shared(self, release_dir):
        """Link shared_paths and shared_files into ``release_dir`` (idempotent)."""
        if not self.shared:
            return
        try:
            if link_shared(release_dir, self.layout.shared_dir, self.shared):
                self.changed = True
        except SharedPathError as exc:
            raise ReleaseError(exc.msg) from None
        except OSError as exc:
            raise ReleaseError("linking shared paths failed: %s" % exc) from None

    def run_fetch_only(self, reuse, record):
        """The fetch phase alone: install the release complete, switch nothing."""
        if reuse:
            self.enter("done")
            return self.result("%s is installed already" % self.version)
        if self.module.check_mode:
            self.changed = True
            return self.result("would fetch %s" % self.version)
        undo = self.fetch_and_install(record)
        if undo is not None and undo["displaced"]:
            # Nothing to switch back to in this run: what it replaced goes now.
            remove_path(undo["displaced"])
        self.enter("done")
        return self.result("fetched %s" % self.version)

    def run_cleanup(self):
        """The cleanup phase alone: prune releases beyond keep_releases."""
        if self.module.check_mode:
            return self.result("would prune releases beyond %d" % self.p["keep_releases"])
        self.enter("prune")
        removed = self.prune({self.current_version, self.previous_version} - {""})
        self.changed = bool(removed)
        self.enter("done")
        if removed:
            return self.result("pruned %s" % ", ".join(sorted(removed)))
        return self.result("nothing to prune")

    def write_state(self, previous_version):
        """Record in state.json that this version is current."""
        p = self.p
        write_json_atomic(
            self.layout.state_path,
            {
                "version": self.version,
                "previous_version": previous_version,
                "deploy_id": p["deploy_id"],
                "package_url": p["package_url"]
                or (read_record(self.layout, self.version) or {}).get("package_url", ""),
                "sha256": self.sha256,
                "updated_at": utc_now(),
            },
        )

    def run_same_version(self, state):
        """``current`` already is this complete version: check health, restart if needed."""
        p = self.p
        if not self.module.check_mode and state.get("version") != self.version:
            # `current` names this release but state.json does not: a run killed between
            # its switch and its state write. state.json follows `current` before anything
            # else can fail (a cancel during the restart below must not leave them apart).
            with contextlib.suppress(OSError):
                self.write_state(state.get("previous_version", "") or "")
                state = read_json(self.layout.state_path) or state
                self.changed = True
        self.enter("health")
        problem = self.health(
            time.monotonic() + min(2.0, max(0.1, self.remaining())), p["health_expect"]
        )
        if problem is None:
            removed = []
            if not self.module.check_mode and "cleanup" in p["phases"]:
                self.enter("prune")
                removed = self.prune({self.version, self.previous_version} - {""})
                self.changed = bool(removed)
            self.enter("done")
            msg = "%s is already current and healthy" % self.version
            if removed:
                msg += "; pruned %s" % ", ".join(sorted(removed))
            return self.result(msg)
        if self.module.check_mode:
            self.changed = True
            return self.result("would restart %s: %s" % (self.version, problem))
        self.changed = True
        try:
            problem = self.restart_and_check()
        except StartFailed as exc:
            raise StartFailed(exc.msg + self.starts_note()) from None
        if problem:
            if self.remaining() <= 0:
                raise DeadlineExceeded(p["timeout"], "health check: %s" % problem)
            raise ReleaseError(
                "health check failed after restart of %s: %s%s"
                % (self.version, problem, self.starts_note())
            )
        if state.get("version") != self.version or state.get("deploy_id") != p["deploy_id"]:
            state.update(
                {
                    "version": self.version,
                    "deploy_id": p["deploy_id"],
                    "sha256": self.sha256,
                    "updated_at": utc_now(),
                }
            )
            state.setdefault("previous_version", self.previous_version)
            state.setdefault("package_url", p["package_url"])
            write_json_atomic(self.layout.state_path, state)
        self.enter("done")
        return self.result("restarted %s, healthy again" % self.version)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            instance_dir=dict(type="path", required=True),
            service=dict(type="str", required=True),
            instance_id=dict(type="str", required=True),
            version=dict(type="str", default=""),
            to_previous=dict(type="bool", default=False),
            phases=dict(
                type="list", elements="str", choices=list(PHASES), default=list(PHASES)
            ),
            final=dict(type="bool", default=True),
            shared_paths=dict(type="list", elements="str", default=[]),
            shared_files=dict(type="list", elements="str", default=[]),
            package_path=dict(type="path", default=""),
            deploy_id=dict(type="str", default=""),
            package_url=dict(type="str", default=""),
            package_sha256=dict(type="str", default=""),
            ca_bundle=dict(type="path", default=""),
            headers=dict(type="dict", default={}, no_log=True),
            timeout=dict(type="int", default=300),
            restart_command=dict(type="str", default=""),
            port=dict(type="int", default=0),
            health_path=dict(type="str", default="/health"),
            health_host=dict(type="str", default="127.0.0.1"),
            health_timeout=dict(type="int", default=30),
            health_expect=dict(type="str", default=""),
            health_retries=dict(type="int", default=0),
            health_retry_delay=dict(type="int", default=2),
            keep_releases=dict(type="int", default=5),
            reuse_release=dict(type="bool", default=True),
            force=dict(type="bool", default=False),
            allowed_hosts=dict(type="list", elements="str", default=[]),
            max_unpacked_bytes=dict(type="int", default=DEFAULT_MAX_UNPACKED_BYTES),
            max_archive_entries=dict(type="int", default=DEFAULT_MAX_ARCHIVE_ENTRIES),
        ),
        supports_check_mode=True,
    )
    release = Release(module)
    signal.signal(signal.SIGTERM, on_sigterm)
    watch_controller()
    try:
        result = release.run()
    except ReleaseError as exc:
        release.cleanup_temp()
        module.fail_json(**release.result(exc.msg, exc.retryable))
    except Exception as exc:  # an unexpected bug still reports the common fields
        release.cleanup_temp()
        module.fail_json(
            **release.result(
                "internal error in floy_release during %s: %s: %s"
                % (release.phase, type(exc).__name__, exc),
                False,
            )
        )
    release.cleanup_temp()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
