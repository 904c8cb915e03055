"""``measure`` against a real HTTPS metrics endpoint on 127.0.0.1 (the session's test PKI):
each answer or fault a gate can meet becomes the measurement a user would expect."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from orchestrator.domain.analysis import Analysis, Measurement, judge
from orchestrator.engine.analysis import measure, run_analysis
from sample.packages import free_port
from sample.pkgserver import Pki
from tests.helpers.metrics import MetricsServer

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def metrics(pki: Pki) -> Iterator[MetricsServer]:
    """A metrics endpoint answering 0.01, 0.12, then 503 for good."""
    server = MetricsServer.start(pki, [0.01, 0.12, None])
    yield server
    server.stop()


def _measure(analysis: Analysis, pki: Pki, ca_bundle: str | None = None) -> Measurement:
    bundle = str(pki.ca_bundle) if ca_bundle is None else ca_bundle
    return measure(analysis, ca_bundle=bundle, clock=lambda: NOW)


def _gate(url: str, **fields: object) -> Analysis:
    return Analysis.from_dict({"url": url, "query": "data.result[0].value[1]",
                               "max": 0.05, "timeout": 1, **fields})


def test_a_value_within_bounds_passes_and_one_above_max_fails(
        metrics: MetricsServer, pki: Pki) -> None:
    gate = _gate(metrics.url)
    good = _measure(gate, pki)
    assert good.ok, good.error
    assert (good.value, good.http_status, good.at) == (0.01, 200, NOW)
    assert 0 < good.seconds < 1
    bad = _measure(gate, pki)
    assert (bad.ok, bad.value, bad.http_status) == (False, 0.12, 200)
    assert bad.error == "value 0.12 is above max 0.05"
    assert metrics.headers[0]["Accept"] == "application/json"


def test_a_503_fails(metrics: MetricsServer, pki: Pki) -> None:
    metrics.series[:] = [None]
    result = _measure(_gate(metrics.url), pki)
    assert (result.ok, result.http_status, result.error) == (False, 503, "HTTP 503")


def test_without_a_query_any_2xx_in_time_passes(metrics: MetricsServer, pki: Pki) -> None:
    result = _measure(Analysis(metrics.url, timeout=1), pki)
    assert result.ok and result.value is None and result.http_status == 200


def test_a_redirect_is_not_followed(metrics: MetricsServer, pki: Pki) -> None:
    result = _measure(_gate(metrics.redirect_url), pki)
    assert not result.ok and result.http_status == 302
    assert result.error.startswith(f"HTTP 302: redirect to {metrics.url} not followed")
    assert metrics.requests == ["/redirect"]


def test_an_untrusted_certificate_fails_the_tls_handshake(
        metrics: MetricsServer, pki: Pki) -> None:
    result = _measure(_gate(metrics.url), pki, ca_bundle="")  # system trust: no test root
    assert not result.ok and result.http_status is None
    assert result.error.startswith("TLS: certificate verify failed")
    assert metrics.served == 0


def test_a_server_slower_than_the_timeout_fails(metrics: MetricsServer, pki: Pki) -> None:
    started = time.monotonic()
    result = _measure(_gate(metrics.slow_url(3)), pki)
    assert time.monotonic() - started < 2
    assert (result.ok, result.http_status, result.error) == (False, None, "timed out after 1 s")


def test_a_server_dripping_its_headers_cannot_outlast_the_budget(
        metrics: MetricsServer, pki: Pki) -> None:
    # Each byte comes well within the 1 s timeout: only a whole-request budget stops it.
    started = time.monotonic()
    result = _measure(_gate(metrics.drip_url(0.2)), pki)
    assert time.monotonic() - started < 2
    assert result.error == "timed out after 1 s"


def test_a_closed_port_is_a_refused_connection(pki: Pki) -> None:
    url = f"https://127.0.0.1:{free_port()}/api/v1/query"
    result = _measure(_gate(url), pki)
    assert (result.ok, result.http_status, result.error) == (False, None, "connection refused")


def test_a_missing_ca_bundle_is_a_failed_measurement(metrics: MetricsServer, pki: Pki) -> None:
    result = _measure(_gate(metrics.url), pki, ca_bundle="/nonexistent/ca.pem")
    assert not result.ok and result.error.startswith("CA bundle /nonexistent/ca.pem:")


def test_a_gate_over_the_real_endpoint_stops_at_the_second_failure(pki: Pki) -> None:
    server = MetricsServer.start(pki, [0.01, None, 0.02, 0.12])
    try:
        gate = _gate(server.url, count=5, interval=0, failure_limit=1)
        recorded: list[Measurement] = []
        verdict = run_analysis(gate, measure_once=lambda: _measure(gate, pki),
                               record=recorded.append, stopped=lambda: False)
    finally:
        server.stop()
    assert verdict is not None and not verdict.passed
    assert verdict.message == ("analysis failed: 2 of 4 measurements failed (failure_limit 1); "
                               "last: value 0.12 is above max 0.05")
    assert [m.http_status for m in recorded] == [200, 503, 200, 200]
    assert judge(gate, recorded) == verdict
