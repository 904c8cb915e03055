"""The fetch of floy_release (module_utils/floy_download.py) against the real HTTPS server:
one deadline for the whole fetch, the URL policy on every hop, credentials bound to their
origin."""

from __future__ import annotations

import io
import sys
import time

import pytest

from sample.pkgserver import PackageServer
from tests.unit.archive_cases import COLLECTIONS

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.floy.release.plugins.module_utils import (
    floy_download as dl,
)

PACKAGE = "hello-2.0.0.tar.gz"
BIG = 1 << 30


def fetch(server: PackageServer, url: str, allowed: tuple[str, ...] = (),
          headers: dict[str, str] | None = None, max_bytes: int = BIG) -> bytes:
    out = io.BytesIO()
    dl.download(url, out, headers or {}, str(server.ca_bundle), list(allowed), max_bytes, 10)
    return out.getvalue()


def other_host(server: PackageServer, path: str) -> str:
    """The same server under its other name: a different origin (the certificate has both)."""
    return server.base_url.replace("127.0.0.1", "localhost") + path


def test_plain_fetch_checks_nothing_else(package_server: PackageServer) -> None:
    assert fetch(package_server, package_server.url(PACKAGE))[:2] == b"\x1f\x8b"


def test_redirect_to_a_host_outside_the_allow_list_is_refused(
        package_server: PackageServer) -> None:
    target = other_host(package_server, f"/pkgs/{PACKAGE}?only-via-redirect=1")
    before = package_server.request_count(f"/pkgs/{PACKAGE}")
    with pytest.raises(dl.FetchError, match=r"refusing the redirect.*not in the allowed"):
        fetch(package_server, package_server.redirect_url(target), allowed=("127.0.0.1",))
    assert package_server.request_count(f"/pkgs/{PACKAGE}") == before, "never fetched"


def test_redirect_within_the_allow_list_is_followed(package_server: PackageServer) -> None:
    target = other_host(package_server, f"/pkgs/{PACKAGE}")
    data = fetch(package_server, package_server.redirect_url(target),
                 allowed=("127.0.0.1", "localhost"))
    assert data[:2] == b"\x1f\x8b"


def test_redirect_to_plain_http_is_refused(package_server: PackageServer) -> None:
    target = package_server.base_url.replace("https://", "http://") + f"/pkgs/{PACKAGE}"
    with pytest.raises(dl.FetchError, match="only https"):
        fetch(package_server, package_server.redirect_url(target))


def test_credentials_never_follow_a_redirect_to_another_origin(
        package_server: PackageServer) -> None:
    package_server.require_token("s3cret")
    try:
        start = len(package_server.request_headers)
        target = other_host(package_server, f"/auth/pkgs/{PACKAGE}")
        with pytest.raises(dl.FetchError, match="HTTP 401"):
            fetch(package_server, package_server.redirect_url(target),
                  headers={"Authorization": "Bearer s3cret"})
        sent = package_server.request_headers[start:]
        assert sent[0].get("Authorization") == "Bearer s3cret", "the origin got it"
        assert len(sent) == 2 and "Authorization" not in sent[1], sent[1]
    finally:
        package_server.require_token(None)


def test_credentials_follow_a_redirect_on_their_own_origin(
        package_server: PackageServer) -> None:
    package_server.require_token("s3cret")
    try:
        target = package_server.auth_url(PACKAGE)
        data = fetch(package_server, package_server.redirect_url(target, 307),
                     headers={"Authorization": "Bearer s3cret"})
        assert data[:2] == b"\x1f\x8b"
    finally:
        package_server.require_token(None)


def test_the_deadline_covers_a_dripping_server(package_server: PackageServer) -> None:
    """One byte every 0.2 s never trips a socket timeout; the whole-fetch timer does."""
    url = f"{package_server.base_url}/drip/0.2/pkgs/{PACKAGE}"
    started = time.monotonic()
    with pytest.raises(dl.FetchTimeout, match="dripping"), \
            dl.deadline_timer(1.5, lambda: "dripping"):
        fetch(package_server, url)
    assert 1.4 < time.monotonic() - started < 4


def test_size_cap_from_content_length(package_server: PackageServer) -> None:
    with pytest.raises(dl.FetchError, match="more than the limit of 100"):
        fetch(package_server, package_server.url(PACKAGE), max_bytes=100)


@pytest.mark.parametrize(("url", "needle"), [
    ("http://127.0.0.1/p.tar.gz", "only https"),
    ("https://127.0.0.1:0/p.tar.gz", "port must be 1-65535"),
    ("https://127.0.0.1:70000/p.tar.gz", "bad port"),
    ("https://127.0.0.1/pkg-\u00e9.tar.gz", "only ASCII"),
    ("https://127.0.0.1/pkg%zz.tar.gz", "percent-encoding"),
    ("https://127.0.0.1/pkg%4.tar.gz", "percent-encoding"),
    ("https://user:pw@127.0.0.1/p.tar.gz", "credentials"),
    ("https://other.example/p.tar.gz", "not in the allowed package hosts"),
])
def test_url_policy(url: str, needle: str) -> None:
    with pytest.raises(dl.FetchError, match=needle):
        dl.check_url(url, ["127.0.0.1"])


def test_url_policy_accepts_good_urls() -> None:
    assert dl.check_url("https://127.0.0.1:8443/a%20b/p.tar.gz?x=1", ["127.0.0.1"])
    assert dl.check_url("https://any.example/p.tar.gz", [])
