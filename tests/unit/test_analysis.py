"""The analysis gate: validating a request, judging answers and series of measurements, and
the loop that takes them (with a scripted endpoint and a fake clock)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.domain.analysis import (
    Analysis,
    Measurement,
    Verdict,
    evaluate,
    judge,
    validate_analysis,
)
from orchestrator.engine.analysis import run_analysis
from orchestrator.errors import ValidationError

URL = "https://prometheus.example.com/api/v1/query?query=error_rate"
QUERY = "data.result[0].value[1]"
GOOD: dict[str, Any] = {"url": URL, "query": QUERY, "max": 0.05}
GATE = Analysis(URL, QUERY, max=0.05)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _refused(value: object, field: str, allowed: frozenset[str] = frozenset()) -> str:
    with pytest.raises(ValidationError) as caught:
        validate_analysis(value, allowed)
    assert caught.value.field == field, caught.value
    return caught.value.reason


def _prometheus(value: object) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": [1733140800.0, value]}]}}).encode()


def _answer(analysis: Analysis = GATE, *, status: int | None = 200, body: bytes = b"",
            seconds: float = 0.01, error: str = "") -> Measurement:
    return evaluate(analysis, at=NOW, http_status=status, body=body, seconds=seconds,
                    error=error)


def _ok(value: float | None = 0.01) -> Measurement:
    return Measurement(NOW, True, value, 200, 0.01)


def _bad(error: str = "HTTP 503", value: float | None = None) -> Measurement:
    return Measurement(NOW, False, value, 503 if error == "HTTP 503" else 200, 0.01, error)


# --- validation ------------------------------------------------------------------------------

def test_no_analysis_is_no_gate() -> None:
    assert validate_analysis(None) is None
    assert validate_analysis({}) is None


def test_a_full_analysis_is_accepted_with_defaults() -> None:
    assert validate_analysis(GOOD) == GATE
    assert validate_analysis({"url": URL}) == Analysis(URL)
    full = {**GOOD, "min": 0, "count": 100, "interval": 0, "timeout": 60, "failure_limit": 99}
    assert validate_analysis(full) == Analysis(URL, QUERY, 0.0, 0.05, 100, 0, 60, 99)


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"url": "http://prometheus.example.com/q"}, "analysis.url", "must be an https:// URL"),
    ({"url": "https://x.example.com/{{ lookup('pipe', 'id') }}"}, "analysis.url",
     "template delimiters"),
    ({"url": 3}, "analysis.url", "must be a string"),
    ({"query": "data.result[0].value[1] | {{ x }}"}, "analysis.query", "template delimiters"),
    ({"query": "data.\nresult"}, "analysis.query", "control character"),
    ({"query": "data."}, "analysis.query", "not a JMESPath expression: Expecting"),
    ({"query": "a ~ b"}, "analysis.query", "Unknown token ~"),
    ({"query": "x" * 1025}, "analysis.query", "too long"),
    ({"query": "(" * 500 + "a" + ")" * 500}, "analysis.query", "nested too deeply"),
    ({"query": "max_by_value(data)"}, "analysis.query", "unknown JMESPath function"),
    ({"query": "max(a, b)"}, "analysis.query", "max() takes 1 argument, not 2"),
    ({"query": "sort_by(a)"}, "analysis.query", "sort_by() takes 2 arguments, not 1"),
    ({"query": "not_null()"}, "analysis.query", "not_null() takes 1 or more arguments, not 0"),
    ({"query": 1}, "analysis.query", "must be a string"),
    ({"query": "", "max": 0.05}, "analysis.max", "needs a query"),
    ({"max": None}, "analysis.query", "needs a bound"),
    ({"max": "0.05"}, "analysis.max", "must be a number, not str"),
    ({"max": True}, "analysis.max", "must be a number, not bool"),
    ({"max": float("inf")}, "analysis.max", "finite"),
    ({"min": float("nan")}, "analysis.min", "finite"),
    ({"min": 10**400}, "analysis.min", "finite"),
    ({"min": 0.1}, "analysis.max", "max 0.05 is below min 0.1"),
    ({"count": 0}, "analysis.count", "between 1 and 100"),
    ({"count": 101}, "analysis.count", "between 1 and 100"),
    ({"count": "3"}, "analysis.count", "must be an integer, not str"),
    ({"count": 3.0}, "analysis.count", "must be an integer, not float"),
    ({"interval": -1}, "analysis.interval", "between 0 and 3600"),
    ({"interval": 3601}, "analysis.interval", "between 0 and 3600"),
    ({"interval": True}, "analysis.interval", "must be an integer, not bool"),
    ({"timeout": 0}, "analysis.timeout", "between 1 and 60"),
    ({"timeout": 61}, "analysis.timeout", "between 1 and 60"),
    ({"failure_limit": 3}, "analysis.failure_limit", "between 0 and 2"),
    ({"failure_limit": -1}, "analysis.failure_limit", "between 0 and 2"),
    ({"failure_limit": None}, "analysis.failure_limit", "must be an integer"),
    ({"successCondition": "x < 1"}, "analysis.successCondition", "unknown key"),
])
def test_each_refusal_names_its_field(change: dict[str, Any], field: str, reason: str) -> None:
    assert reason in _refused({**GOOD, **change}, field)


def test_the_url_is_required_and_the_value_an_object() -> None:
    assert _refused({"query": QUERY, "max": 1}, "analysis.url") == "is required"
    assert "must be an object" in _refused([URL], "analysis")
    assert "must be an object" in _refused(URL, "analysis")
    odd_key: dict[object, object] = {"url": URL, 1: 2}
    assert "unknown key 1" in _refused(odd_key, "analysis")


def test_without_a_query_bounds_are_refused_with_one_they_are_required() -> None:
    assert "needs a query" in _refused({"url": URL, "min": 0}, "analysis.min")
    assert "min, max or both" in _refused({"url": URL, "query": QUERY}, "analysis.query")
    assert validate_analysis({"url": URL, "query": QUERY, "min": 1}) == Analysis(URL, QUERY, 1)
    functions = "max(data.result[].to_number(value[1])) | not_null(@, `0`)"
    assert validate_analysis({**GOOD, "query": functions}) == replace(GATE, query=functions)


def test_the_url_obeys_the_package_host_allow_list() -> None:
    allowed = frozenset({"Prometheus.example.com"})
    assert validate_analysis(GOOD, allowed) == GATE
    reason = _refused({**GOOD, "url": "https://evil.example.net/q"}, "analysis.url", allowed)
    assert "not in the allowed package hosts" in reason


def test_jmespath_messages_fit_on_one_line() -> None:
    reason = _refused({**GOOD, "query": "data.result["}, "analysis.query")
    assert "\n" not in reason and "Incomplete expression" in reason


# --- evaluate --------------------------------------------------------------------------------

@pytest.mark.parametrize(("sample", "value"), [
    ("0.012", 0.012), ("1e-3", 0.001), (" 0.02 ", 0.02), (0.03, 0.03), (0, 0.0), ("-1", -1.0),
])
def test_a_number_or_numeric_string_within_bounds_passes(sample: object, value: float) -> None:
    result = _answer(body=_prometheus(sample))
    assert result == Measurement(NOW, True, value, 200, 0.01, "")


@pytest.mark.parametrize(("analysis", "sample", "error"), [
    (GATE, "0.12", "value 0.12 is above max 0.05"),
    (Analysis(URL, QUERY, min=5), 3, "value 3 is below min 5"),
    (Analysis(URL, QUERY, min=0.5, max=1), "0.25", "value 0.25 is below min 0.5"),
])
def test_a_value_out_of_bounds_fails_and_is_kept(analysis: Analysis, sample: object,
                                                  error: str) -> None:
    result = _answer(analysis, body=_prometheus(sample))
    assert (result.ok, result.error, result.value) == (False, error, float(sample))  # type: ignore[arg-type]


def test_a_query_with_functions_reduces_a_vector() -> None:
    gate = Analysis(URL, "max(data.result[].to_number(value[1]))", max=0.05)
    body = json.dumps({"data": {"result": [{"value": [0, "0.01"]}, {"value": [0, "0.07"]}]}})
    assert _answer(gate, body=body.encode()).error == "value 0.07 is above max 0.05"


def test_bounds_are_inclusive() -> None:
    assert _answer(Analysis(URL, QUERY, min=0.05, max=0.05), body=_prometheus("0.05")).ok


@pytest.mark.parametrize(("sample", "error"), [
    ("NaN", f"query {QUERY} is 'NaN', not a finite number"),
    ("+Inf", f"query {QUERY} is '+Inf', not a finite number"),
    ("abc", f"query {QUERY} is 'abc', not a number"),
    ("1_000", f"query {QUERY} is '1_000', not a number"),
    (True, f"query {QUERY} is True, not a number"),
    ([1], f"query {QUERY} is [1], not a number"),
    (None, f"query {QUERY} found nothing"),
    ("x" * 500, f"query {QUERY} is '{'x' * 116}..., not a number"),
])
def test_what_is_not_a_finite_number_fails(sample: object, error: str) -> None:
    result = _answer(body=_prometheus(sample))
    assert (result.ok, result.value, result.error) == (False, None, error)


def test_an_infinite_json_number_or_huge_integer_fails() -> None:
    assert _answer(body=b'{"data": {"result": [{"value": [0, 1e999]}]}}').error.endswith(
        "is inf, not a finite number")
    huge = b'{"data": {"result": [{"value": [0, 1' + b"0" * 400 + b"]}]}}"
    assert "not a finite number" in _answer(body=huge).error


def test_a_missing_path_found_nothing() -> None:
    body = json.dumps({"status": "success", "data": {"result": []}}).encode()
    assert _answer(body=body).error == f"query {QUERY} found nothing"


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"", b"\xff\xfe\x00", b"[" * 100_000])
def test_a_body_that_is_not_json_fails(body: bytes) -> None:
    result = _answer(body=body)
    assert not result.ok and result.error.startswith("body is not JSON: ")


def test_a_query_failing_at_run_time_fails_the_measurement() -> None:
    result = _answer(Analysis(URL, "abs(data)", max=1), body=b'{"data": "x"}')
    assert not result.ok and result.error.startswith("query abs(data) failed: ")


def test_a_non_2xx_or_transport_error_fails_before_the_body_is_read() -> None:
    assert _answer(status=503, body=_prometheus("0.01")).error == "HTTP 503"
    assert _answer(status=404).error == "HTTP 404"
    failed = _answer(status=None, error="connection refused")
    assert failed == Measurement(NOW, False, None, None, 0.01, "connection refused")
    assert _answer(status=None).error == "no answer"


def test_transport_messages_are_kept_to_one_printable_line() -> None:
    error = _answer(status=None, error="line one\nline\x00two\u202e" + "x" * 300).error
    assert error.startswith("line one line two") and len(error) == 200
    assert error.isprintable()


def test_an_answer_slower_than_the_timeout_fails() -> None:
    result = _answer(body=_prometheus("0.01"), seconds=5.5)
    assert (result.ok, result.error) == (False, "answered in 5.50 s, over the 5 s timeout")
    assert _answer(body=_prometheus("0.01"), seconds=5.0).ok


def test_without_a_query_any_2xx_passes_whatever_the_body() -> None:
    plain = Analysis(URL)
    assert _answer(plain, status=204, body=b"not json") == Measurement(NOW, True, None, 204,
                                                                        0.01)
    assert not _answer(plain, status=301).ok


# --- judge -----------------------------------------------------------------------------------

def test_judge_waits_for_count_measurements() -> None:
    assert judge(GATE, []) is None
    assert judge(GATE, [_ok(), _ok()]) is None
    assert judge(GATE, [_ok(0.01), _ok(0.02), _ok(0.01)]) == Verdict(
        True, "analysis passed: 3 of 3 measurements ok (values 0.01, 0.02, 0.01)")


def test_judge_fails_as_soon_as_failures_exceed_the_limit() -> None:
    assert judge(GATE, [_ok(), _bad()]) == Verdict(
        False, "analysis failed: 1 of 2 measurements failed (failure_limit 0); last: HTTP 503")
    tolerant = replace(GATE, count=5, failure_limit=1)
    assert judge(tolerant, [_bad(), _ok()]) is None
    over = _bad("value 0.12 is above max 0.05", 0.12)
    assert judge(tolerant, [_bad(), over]) == Verdict(
        False, "analysis failed: 2 of 2 measurements failed (failure_limit 1); "
               "last: value 0.12 is above max 0.05")


def test_judge_passes_within_the_failure_limit_and_says_what_failed() -> None:
    tolerant = replace(GATE, failure_limit=1)
    assert judge(tolerant, [_ok(0.01), _bad(), _ok(0.02)]) == Verdict(
        True, "analysis passed: 2 of 3 measurements ok (values 0.01, 0.02); failed: HTTP 503")


def test_judge_without_a_query_reports_answer_times() -> None:
    plain = Analysis(URL, count=2)
    assert judge(plain, [_ok(None), _ok(None)]) == Verdict(
        True, "analysis passed: 2 of 2 measurements ok (answered 2xx in 0.01, 0.01 s)")


def test_judge_lists_at_most_ten_values_and_ignores_extra_measurements() -> None:
    many = replace(GATE, count=12)
    verdict = judge(many, [_ok(float(n)) for n in range(13)])
    assert verdict is not None and verdict.passed
    assert verdict.message.endswith("(values 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (2 more))")
    assert verdict.message.startswith("analysis passed: 12 of 12 ")


# --- serialisation ---------------------------------------------------------------------------

def test_analysis_round_trips_through_json() -> None:
    data = GATE.to_dict()
    assert data == {"url": URL, "query": QUERY, "min": None, "max": 0.05, "count": 3,
                    "interval": 10, "timeout": 5, "failure_limit": 0}
    assert Analysis.from_dict(json.loads(json.dumps(data))) == GATE
    assert validate_analysis(data) == GATE
    full = Analysis(URL, QUERY, -1.5, 2.0, 7, 0, 60, 6)
    assert Analysis.from_dict(json.loads(json.dumps(full.to_dict()))) == full


def test_measurement_round_trips_through_json() -> None:
    for m in (_ok(0.012), _bad(), Measurement(NOW, False, None, None, 5.0, "timed out")):
        data = json.loads(json.dumps(m.to_dict()))
        assert Measurement.from_dict(data) == m
    assert _ok().to_dict()["at"] == "2026-12-02T12:00:00.000000Z"


# --- run_analysis ----------------------------------------------------------------------------

class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """measure_once answering scripted measurements; it refuses calls nobody scripted and
    notes the fake time of each call. ``cost`` is how long each measurement takes."""

    def __init__(self, clock: FakeTime, *answers: Measurement, cost: float = 0.0) -> None:
        self.clock = clock
        self.answers = list(answers)
        self.calls: list[float] = []
        self.cost = cost

    def __call__(self) -> Measurement:
        assert self.answers, "measure_once called more often than scripted"
        self.calls.append(self.clock.now)
        self.clock.now += self.cost
        return self.answers.pop(0)


def _run(analysis: Analysis, script: Script, clock: FakeTime, *,
         already: tuple[Measurement, ...] = (),
         stopped: Callable[[], bool] = lambda: False,
         ) -> tuple[Verdict | None, list[Measurement]]:
    recorded: list[Measurement] = []
    verdict = run_analysis(analysis, measure_once=script, record=recorded.append,
                           stopped=stopped, already=already, sleep_step=0.25,
                           monotonic=clock.monotonic, sleep=clock.sleep)
    return verdict, recorded


def test_measurements_start_interval_seconds_apart_until_the_gate_passes() -> None:
    clock = FakeTime()
    script = Script(clock, _ok(0.01), _ok(0.02), _ok(0.01), cost=1.5)
    verdict, recorded = _run(GATE, script, clock)
    assert verdict == judge(GATE, recorded) and verdict is not None and verdict.passed
    assert recorded == [_ok(0.01), _ok(0.02), _ok(0.01)]
    assert script.calls == [100.0, 110.0, 120.0]
    assert max(clock.sleeps) <= 0.25
    assert clock.now == 121.5  # no wait after the deciding measurement


def test_the_gate_stops_at_the_first_failure_too_many() -> None:
    clock = FakeTime()
    script = Script(clock, _ok(), _bad(), _ok())
    verdict, recorded = _run(GATE, script, clock)
    assert verdict is not None and not verdict.passed
    assert len(recorded) == 2 and len(script.answers) == 1


def test_measurements_taken_before_a_restart_count_and_are_not_repeated() -> None:
    clock = FakeTime()
    script = Script(clock, _ok(0.03))
    verdict, recorded = _run(GATE, script, clock, already=(_ok(0.01), _ok(0.02)))
    assert recorded == [_ok(0.03)]
    assert verdict is not None and verdict.message.endswith("(values 0.01, 0.02, 0.03)")
    assert script.calls == [110.0]  # a full interval after the restart


def test_a_gate_already_decided_before_a_restart_measures_nothing() -> None:
    clock = FakeTime()
    verdict, recorded = _run(GATE, Script(clock), clock, already=(_ok(), _bad()))
    assert verdict is not None and not verdict.passed and recorded == []


def test_stopped_returns_none_while_waiting() -> None:
    clock = FakeTime()
    script = Script(clock, _ok(), _ok(), _ok())
    verdict, recorded = _run(GATE, script, clock, stopped=lambda: clock.now >= 104.0)
    assert verdict is None and len(recorded) == 1
    assert clock.now == 104.0  # noticed within one sleep_step


def test_stopped_before_the_first_measurement_measures_nothing() -> None:
    clock = FakeTime()
    verdict, recorded = _run(GATE, Script(clock), clock, stopped=lambda: True)
    assert verdict is None and recorded == []


def test_a_measurement_slower_than_the_interval_is_followed_at_once() -> None:
    clock = FakeTime()
    script = Script(clock, _ok(), _ok(), _ok(), cost=12.0)
    _run(GATE, script, clock)
    assert script.calls == [100.0, 112.0, 124.0] and clock.sleeps == []


def test_record_sees_each_measurement_before_the_verdict_and_its_errors_propagate() -> None:
    clock = FakeTime()

    def record(m: Measurement) -> None:
        raise OSError("store unreachable")

    with pytest.raises(OSError, match="store unreachable"):
        run_analysis(GATE, measure_once=Script(clock, _bad()), record=record,
                     stopped=lambda: False, monotonic=clock.monotonic, sleep=clock.sleep)

