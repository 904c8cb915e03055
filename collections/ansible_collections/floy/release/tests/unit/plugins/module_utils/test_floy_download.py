# Copyright: (c) 2026, floy contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""floy_download: the URL policy every fetched URL (and redirect hop) passes."""

from __future__ import annotations

import pytest
from ansible_collections.floy.release.plugins.module_utils.floy_download import (
    FetchError,
    check_url,
    origin,
    safe_url,
)


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("https://packages.example.com/hello-1.0.0.tar.gz", []),
        ("https://packages.example.com:8443/a%20b.tar.gz?token=x", []),
        ("https://Packages.Example.com/hello.tar.gz", ["packages.example.com"]),
        ("https://[::1]:8443/hello.tar.gz", []),
    ],
)
def test_urls_floy_fetches(url, allowed):
    assert check_url(url, allowed) == url


@pytest.mark.parametrize(
    "url, allowed, reason",
    [
        ("http://packages.example.com/p.tar.gz", [], "only https://"),
        ("file:///etc/passwd", [], "only https://"),
        ("ftp://packages.example.com/p.tar.gz", [], "only https://"),
        ("https:///p.tar.gz", [], "only https://"),
        ("", [], "only ASCII"),
        ("https://packages.example.com/p\u00e9.tar.gz", [], "only ASCII"),
        ("https://packages.example.com/p.tar.gz\n", [], "only ASCII"),
        ("https://packages.example.com/p%zz.tar.gz", [], "percent-encoding"),
        ("https://packages.example.com:99999/p.tar.gz", [], "port"),
        ("https://packages.example.com:0/p.tar.gz", [], "port must be"),
        ("https://user:secret@packages.example.com/p.tar.gz", [], "credentials"),
        ("https://evil.example.com/p.tar.gz", ["packages.example.com"], "not in the allowed"),
    ],
)
def test_urls_floy_refuses(url, allowed, reason):
    with pytest.raises(FetchError) as info:
        check_url(url, allowed)
    assert reason in info.value.msg
    assert "secret" not in info.value.msg, "credentials never reach a message"


def test_messages_show_urls_without_credentials_or_query():
    assert safe_url("https://u:p@h.example.com:8443/p.tar.gz?token=t") == \
        "https://h.example.com:8443/p.tar.gz"


def test_the_origin_credentials_are_bound_to():
    assert origin("https://H.example.com/p") == ("https", "h.example.com", 443)
    assert origin("https://h.example.com:8443/p") == ("https", "h.example.com", 8443)
