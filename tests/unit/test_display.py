"""Text rendering: stored strings never reach a terminal as control sequences."""

from __future__ import annotations

import io
import unicodedata
from datetime import UTC, datetime

import pytest

from orchestrator.cli.display import (
    follow,
    render_checks,
    render_history,
    render_instances,
    render_status,
    render_versions,
    safe_text,
)
from orchestrator.domain.records import RunSummary, VersionCheck
from orchestrator.models import (
    DeployStatus,
    InstanceInfo,
    InstanceStatus,
    InstanceVersion,
    ServiceInstances,
    ServiceVersions,
    Status,
)

T0 = datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC)
TITLE = "\x1b]0;pwned\x07"  # set the window title
ERASE = "\x1b[2J"  # clear the screen
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x07"  # OSC 52: write the clipboard
HOSTILE = f"boom{TITLE}{ERASE}{CLIPBOARD}\x9b31m\x7f\u202eevil\u2066\u200b\ufeff\r\x00end"


def _raw_controls(text: str) -> list[str]:
    """Characters of ``text`` a terminal would act on (the renderer's own newlines aside)."""
    return [ch for ch in text if ch != "\n"
            and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")]


@pytest.mark.parametrize(("raw", "shown"), [
    (TITLE, "\\x1b]0;pwned\\x07"),
    (ERASE, "\\x1b[2J"),
    (CLIPBOARD, "\\x1b]52;c;cm0gLXJmIH4K\\x07"),
    ("\x9b31m", "\\x9b31m"),  # C1 CSI
    ("a\x7fb", "a\\x7fb"),
    ("a\u202eb", "a\\u202eb"),  # right-to-left override
    ("a\u2066b\u2069", "a\\u2066b\\u2069"),  # isolates
    ("a\u200bb\u2060c\ufeff", "a\\u200bb\\u2060c\\ufeff"),  # zero-width characters
    ("line\nnext\r", "line\\x0anext\\x0d"),
    ("tab\there", "tab\\x09here"),
    ("\u2028", "\\u2028"),
    ("\U000e0001", "\\U000e0001"),  # a language tag (Cf beyond the BMP)
])
def test_safe_text_escapes_what_a_terminal_acts_on(raw: str, shown: str) -> None:
    assert safe_text(raw) == shown


@pytest.mark.parametrize("text", ["plain", "équipe ✓", "1.0.0+build.5", "a { b } c", "",
                                  "日本語", "a\\x1b as typed"])
def test_safe_text_keeps_printable_text(text: str) -> None:
    assert safe_text(text) == text


def test_safe_text_keeps_newlines_only_when_asked() -> None:
    assert safe_text("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"
    assert safe_text("a\r\nb", keep_newlines=True) == "a\\x0d\nb"


def _status() -> DeployStatus:
    instances = (
        InstanceStatus(f"hello-1{TITLE}", f"1.0{ERASE}", "2.0.0", T0, T0, HOSTILE,
                       Status.FAILED, 2, "health", 1, f"0.9{CLIPBOARD}"),
        InstanceStatus("hello-2", "", "2.0.0", T0, None, "", Status.IN_PROGRESS, 1,
                       f"fetch{ERASE}", 1, ""),
    )
    return DeployStatus(
        deploy_id=f"d-1{TITLE}", service="hello", version="2.0.0", status=Status.FAILED,
        progress=DeployStatus.progress_from(instances), instances=instances, started_at=T0,
        updated_at=T0, error_message=f"1 of 2 failed{TITLE}\nstdout tail{ERASE}\nend",
        batch_size=f"1{ERASE}")


def test_render_status_has_no_raw_control_characters() -> None:
    text = render_status(_status())
    assert _raw_controls(text) == []
    assert "boom\\x1b]0;pwned\\x07\\x1b[2J" in text
    assert "  error: 1 of 2 failed\\x1b]0;pwned\\x07\n         stdout tail\\x1b[2J\n" in text


def test_follow_has_no_raw_control_characters() -> None:
    out = io.StringIO()
    follow(_status, out, sleep=lambda _: None)
    assert _raw_controls(out.getvalue()) == []
    assert "hello-1\\x1b]0;pwned\\x07" in out.getvalue()


def test_other_views_have_no_raw_control_characters() -> None:
    versions = ServiceVersions(
        service="hello", instances=(InstanceVersion(f"i{TITLE}", f"1.0{ERASE}", T0),),
        version_summary={f"1.0{ERASE}": 1}, total_instances=1, updated_at=T0)
    instances = ServiceInstances(
        service="hello",
        instances=(InstanceInfo(f"i{TITLE}", f"h{ERASE}", 80, f"v{CLIPBOARD}", T0,
                                {"note": f"zero\u200bwidth{TITLE}"}),),
        total=1, limit=100, offset=0)
    runs = [RunSummary(f"r{TITLE}", "deploy", f"1.0{ERASE}", Status.FAILED, f"eve{TITLE}",
                       T0, T0, 1, 0, 1, 0, f"p{ERASE}", None, HOSTILE)]
    checks = [
        VersionCheck(f"i{TITLE}", "1.0.0", f"{{{{ lookup('pipe','id') }}}}{ERASE}", True,
                     f"invalid current_version: {HOSTILE}", False),
        VersionCheck("j", "1.0.0", "", False, f"unreachable: {HOSTILE}", False),
    ]
    for text in (render_versions(versions), render_instances(instances),
                 render_history("hello", runs), render_checks("hello", checks)):
        assert _raw_controls(text) == [], text
        assert "\\x1b" in text
    assert "DRIFT" in render_checks("hello", checks)


def test_a_paused_canary_reads_in_one_look() -> None:
    from orchestrator.cli.display import canary_lines, point_line
    from orchestrator.models.canary import AnalysisPoint, CanaryStatus, Decision

    at = datetime(2026, 12, 6, 12, 0, 5, tzinfo=UTC)
    canary = CanaryStatus(
        steps=("1", "pause", "100%"), batches=(1, 4), batch=1, state="paused",
        paused_since=at, promoted_by="token:\x1b]0;x\x07eve",
        decisions=(Decision(at, 1, "paused", "floy", "until promoted"),))
    lines = canary_lines(canary)
    assert lines[0] == "  steps 1,pause,100% (batches 1+4): paused after batch 1 until promoted"
    assert lines[1].startswith("  promoted by token:") and not _raw_controls(lines[1])
    assert lines[2] == "  12:00:05Z gate 1: paused by floy: until promoted"
    point = AnalysisPoint(1, at, False, 0.3, 200, 0.01, "value 0.3 is above max 0.05")
    assert point_line(point) == ("  12:00:05Z analysis after batch 1: value 0.3 failed: "
                                 "value 0.3 is above max 0.05")
