"""The live dashboard (``/`` of ``floy serve``) in a real headless Chromium.

Deployments are started through the API (httpx, verified TLS, deployer token) against real
local instances of ``hello``; the page is driven with selenium 4 through Debian's
``chromium`` and ``chromium-driver`` (scripts/bootstrap.sh installs both as root).

* Selenium Manager never runs: the driver path and the browser binary are both given, and
  ``SE_OFFLINE=true`` is set for the session, so nothing is ever downloaded.
* TLS: the browser runs with ``--ignore-certificate-errors``. Its trust store is an NSS
  database under ``$HOME`` (adding the test CA would need ``certutil`` and writes to
  root's ``~/.pki``); the browser only ever talks to the test server on 127.0.0.1, and
  every test also reaches the same server through an httpx client that verifies the
  chain against the test CA (``floy_server.ca_file``), so the TLS setup is still checked.
* The DOM is read with one ``execute_script`` per look (the page re-renders parts of
  itself every few seconds, so held element references would go stale).

Screenshots are written to ``tests/artifacts/dashboard-<test>.png`` (and
``...-failure.png`` when a test fails), and their paths printed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sample.pkgserver import Pki
from tests.helpers.httpserver import FloyServer
from tests.helpers.metrics import MetricsServer
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
STATIC = Path(__file__).resolve().parents[2] / "orchestrator" / "http" / "static"
WINDOW = (1440, 1100)
T = TypeVar("T")

try:  # imported here so that a missing selenium is a clear failure, like a missing browser
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.chrome.options import Options as ChromeOptions
    from selenium.webdriver.chrome.service import Service as ChromeService
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
except ImportError as exc:  # pragma: no cover - only without the test extras
    SELENIUM_MISSING: str | None = str(exc)
else:
    SELENIUM_MISSING = None


# --------------------------------------------------------------------------- the browser

def _missing_browser() -> str | None:
    """Why the browser cannot run here, or None."""
    if SELENIUM_MISSING:
        return f"selenium is not installed ({SELENIUM_MISSING}): .venv needs the test extras"
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return f"{' and '.join(missing)} missing (Debian packages chromium, chromium-driver)"
    return None


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One headless Chromium per test session (per xdist worker), fixed window size."""
    why = _missing_browser()
    if why:
        pytest.fail(f"the dashboard test needs a browser: {why}. Run scripts/bootstrap.sh as "
                    f"root (it apt-installs chromium and chromium-driver), or "
                    f"'apt-get install chromium chromium-driver'.", pytrace=False)
    workdir = tmp_path_factory.mktemp("chromium")
    options = ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root; Chromium's sandbox refuses root
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--ignore-certificate-errors",  # see the module docstring
        f"--user-data-dir={workdir / 'profile'}",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-features=Translate,MediaRouter,OptimizationHints",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = ChromeService(executable_path=str(CHROMEDRIVER),
                            log_output=str(workdir / "chromedriver.log"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # Selenium Manager: never download anything
        try:
            driver = webdriver.Chrome(service=service, options=options)
        except WebDriverException as exc:
            log = workdir / "chromedriver.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"chromium/chromedriver did not start: {exc.msg}\n{tail}\n"
                        f"Check the packages chromium and chromium-driver "
                        f"(scripts/bootstrap.sh installs them).", pytrace=False)
        try:
            driver.set_window_size(*WINDOW)
            yield driver
        finally:
            driver.quit()


# --------------------------------------------------------------------------- the page

def _until(condition: Callable[[], T | bool | None], timeout: float, what: str) -> T:
    """wait_until, tolerant of the page re-rendering an element under our feet."""
    def look() -> T | bool | None:
        try:
            return condition()
        except StaleElementReferenceException:
            return None
    return wait_until(look, timeout, what, interval=0.1)


RUN_STATE_JS = """
const panel = document.getElementById('run-panel');
const cells = {};
for (const c of panel.querySelectorAll('[data-instance]')) {
  cells[c.getAttribute('data-instance')] = {
    status: c.getAttribute('data-status'), title: c.getAttribute('title'),
    batch: c.closest('[data-batch]') ? c.closest('[data-batch]').getAttribute('data-batch') : null,
  };
}
const msg = document.getElementById('message');
const cancel = document.getElementById('cancel-run');
return {
  run: panel.dataset.runId, panel_status: panel.dataset.status,
  status: document.getElementById('run-status').dataset.status,
  status_text: document.getElementById('run-status').textContent,
  cells: cells,
  cancel_enabled: !cancel.disabled,
  message: msg.hidden ? '' : msg.textContent, message_kind: msg.dataset.kind || '',
  runs: [...document.querySelectorAll('#runs [data-run]')].map(e => e.getAttribute('data-run')),
};
"""

SERVICE_JS = """
const card = [...document.querySelectorAll('#services [data-service]')]
  .find(e => e.getAttribute('data-service') === arguments[0]);
if (!card) return null;
const counts = {};
for (const li of card.querySelectorAll('.dist-legend [data-version]')) {
  counts[li.getAttribute('data-version')] = Number(li.getAttribute('data-count'));
}
const segs = [...card.querySelectorAll('.dist-bar [data-version]')]
  .map(s => [s.getAttribute('data-version'), s.getBoundingClientRect().width]);
const total = card.querySelector('[data-total]');
return {counts: counts, segments: segs, total: total ? Number(total.dataset.total) : null,
        text: card.innerText};
"""

DRIFT_JS = """
const card = [...document.querySelectorAll('#services [data-service]')]
  .find(e => e.getAttribute('data-service') === arguments[0]);
const row = card && [...card.querySelectorAll('[data-drift]')]
  .find(e => e.getAttribute('data-drift') === arguments[1]);
return row ? [...row.querySelectorAll('td')].slice(1).map(td => td.textContent) : null;
"""

HISTORY_JS = """
const row = [...document.querySelectorAll('#history [data-history-run]')]
  .find(e => e.getAttribute('data-history-run') === arguments[0]);
if (!row) return null;
const count = (k) => Number(row.querySelector(`[data-count="${k}"]`).textContent);
return {status: row.querySelector('[data-status]').getAttribute('data-status'),
        completed: count('completed'), failed: count('failed'),
        cancelled: count('cancelled'), total: count('total'), text: row.innerText};
"""


CANARY_JS = """
const box = document.getElementById('canary');
const button = (id) => {
  const b = document.getElementById(id);
  return {shown: !b.hidden && !b.closest('[hidden]'), enabled: !b.disabled, text: b.textContent};
};
const attr = (e, name) => e.getAttribute(name);
const stateNode = document.getElementById('canary-state');
const banner = document.getElementById('canary-banner');
const figure = document.getElementById('canary-analysis');
return {
  shown: !box.hidden,
  state: stateNode.dataset.canaryState, state_text: stateNode.textContent,
  state_live: attr(stateNode, 'aria-live'),
  batches: [...box.querySelectorAll('[data-step-batch]')]
    .map(b => [attr(b, 'data-step-batch'), attr(b, 'data-batch-state')]),
  gaps: [...box.querySelectorAll('[data-gap]')]
    .map(g => [attr(g, 'data-gap'), attr(g, 'data-pause'), attr(g, 'data-gap-state')]),
  banner: banner.hidden ? '' : banner.textContent,
  promote: button('promote-run'), promote_full: button('promote-full'),
  abort: button('abort-run'), rollback_box: button('abort-rollback'),
  analysis_shown: !figure.hidden,
  caption: document.getElementById('canary-analysis-caption').textContent,
  chart_empty: !!box.querySelector('[data-chart="empty"]'),
  points: [...box.querySelectorAll('svg [data-point]')].map(c => ({
    ok: attr(c, 'data-ok'), value: attr(c, 'data-value'), batch: attr(c, 'data-batch'),
    cy: Number(attr(c, 'cy')), title: c.querySelector('title').textContent})),
  thresholds: [...box.querySelectorAll('svg [data-threshold]')]
    .map(t => [attr(t, 'data-threshold'), Number(attr(t, 'y1'))]),
  decisions: [...box.querySelectorAll('[data-decision]')].map(d => attr(d, 'data-decision')),
};
"""


class Dashboard:
    """The page, as a test sees it."""

    def __init__(self, driver: WebDriver, url: str, name: str) -> None:
        self.driver = driver
        self.url = url.rstrip("/")
        self.name = name

    def sign_in(self, token: str) -> None:
        """Load the page with a clean tab session, then sign in with ``token``."""
        self.driver.get(self.url + "/")
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.get(self.url + "/")
        field = self.driver.find_element(By.ID, "token")
        assert field.get_attribute("type") == "password"
        field.send_keys(token)
        self.driver.find_element(By.ID, "use-token").click()
        _until(lambda: self.driver.find_element(By.ID, "token").is_displayed() is False
               and self.driver.execute_script(
                   "return sessionStorage.getItem('floy.token')") == token,
               10, "the page to take the token")
        _until(lambda: self.driver.find_elements(By.CSS_SELECTOR, "#services[data-loaded]"),
               15, "the services panel to load")

    def state(self) -> dict[str, Any]:
        result = self.driver.execute_script(RUN_STATE_JS)
        assert isinstance(result, dict)
        return result

    def canary(self) -> dict[str, Any]:
        """The run panel's canary part: steps strip, state, buttons, analysis chart."""
        result = self.driver.execute_script(CANARY_JS)
        assert isinstance(result, dict)
        return result

    def wait_canary(self, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                    what: str) -> dict[str, Any]:
        def look() -> dict[str, Any] | None:
            seen = self.canary()
            return seen if predicate(seen) else None
        return _until(look, timeout, what)

    def service(self, name: str) -> dict[str, Any] | None:
        return self.driver.execute_script(SERVICE_JS, name)  # type: ignore[no-any-return]

    def history_row(self, run_id: str) -> dict[str, Any] | None:
        return self.driver.execute_script(HISTORY_JS, run_id)  # type: ignore[no-any-return]

    def open_run(self, run_id: str, timeout: float = 30.0) -> None:
        """Wait until the run is listed and open it (it may have opened by itself)."""
        def listed_or_open() -> bool:
            state = self.state()
            return state["run"] == run_id or run_id in state["runs"]
        _until(listed_or_open, timeout, f"{run_id} in the running deployments")
        if self.state()["run"] != run_id:
            def click() -> bool:
                for button in self.driver.find_elements(By.CSS_SELECTOR, "#runs [data-run]"):
                    if button.get_attribute("data-run") == run_id:
                        button.click()
                        return True
                return False
            _until(click, 10, f"a click on {run_id}")
        _until(lambda: self.state()["run"] == run_id, 10, f"the run panel to show {run_id}")

    def wait_run(self, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                 what: str) -> dict[str, Any]:
        def look() -> dict[str, Any] | None:
            state = self.state()
            return state if predicate(state) else None
        return _until(look, timeout, what)

    def screenshot(self, suffix: str = "") -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"dashboard-{self.name}{suffix}.png"
        self.driver.save_screenshot(str(path))
        print(f"dashboard screenshot: {path}")
        return path


@pytest.fixture
def dashboard(browser: WebDriver, floy_server: FloyServer, request: pytest.FixtureRequest
              ) -> Iterator[Dashboard]:
    """The page of this test's server; on failure, a screenshot and the browser's log."""
    name = request.node.name.removeprefix("test_")
    page = Dashboard(browser, floy_server.url, name)
    (ARTIFACTS / f"dashboard-{name}-failure.png").unlink(missing_ok=True)  # a stale one
    failed_before = request.session.testsfailed
    yield page
    if request.session.testsfailed > failed_before:  # the call phase failed
        try:
            page.screenshot("-failure")
            print("page state:", page.state())
            for entry in browser.get_log("browser"):
                print("browser log:", entry.get("level"), entry.get("message"))
        except WebDriverException as exc:
            print(f"could not capture the failed page: {exc.msg}")
    # leave the page signed out, so that nothing polls the next test's server
    try:
        browser.execute_script("sessionStorage.clear()")
        browser.get("about:blank")
    except WebDriverException:
        pass


# --------------------------------------------------------------------------- the API side

def start_deployment(server: FloyServer, prefix: str, count: int, batch_size: str
                     ) -> tuple[str, list[str]]:
    """Register ``count`` local instances of hello and deploy 2.0.0 to them via the API."""
    ids = server.env.register(count, prefix=prefix)
    url, sha = server.env.packages["2.0.0"]
    run_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with server.client("deployer") as client:
        answer = client.post("/v1/deployments", json={
            "service": "hello", "version": "2.0.0", "instances": ids, "package_url": url,
            "package_sha256": sha, "deploy_id": run_id, "batch_size": batch_size,
            "retry_count": 0,
        })
    assert answer.status_code == 202, answer.text
    assert answer.json()["deploy_id"] == run_id
    return run_id, ids


def start_run(server: FloyServer, run_id: str, ids: list[str], version: str,
              fields: dict[str, Any]) -> str:
    """Deploy ``version`` of hello to ``ids`` via the API, with extra request ``fields``
    (``steps``, ``analysis``)."""
    url, sha = server.env.packages[version]
    with server.client("deployer") as client:
        answer = client.post("/v1/deployments", json={
            "service": "hello", "version": version, "instances": ids, "package_url": url,
            "package_sha256": sha, "deploy_id": run_id, "retry_count": 0, **fields,
        })
    assert answer.status_code == 202, answer.text
    return run_id


def api_status(server: FloyServer, run_id: str) -> dict[str, Any]:
    with server.client("read") as client:
        answer = client.get(f"/v1/deployments/{run_id}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert isinstance(body, dict)
    return body


def api_wait_ended(server: FloyServer, run_id: str, timeout: float = 120.0) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        body = api_status(server, run_id)
        return body if body["finished_at"] is not None else None
    return wait_until(ended, timeout, f"{run_id} to end (API)", interval=0.3)


def api_services(server: FloyServer) -> dict[str, Any]:
    with server.client("read") as client:
        answer = client.get("/v1/services")
    assert answer.status_code == 200, answer.text
    return {s["service"]: s for s in answer.json()["services"]}


# --------------------------------------------------------------------------- the tests

def test_dashboard_follows_a_deployment(floy_server: FloyServer, dashboard: Dashboard) -> None:
    """A run started through the API shows up (auto-opened), its cells go in_progress then
    completed, and the services panel and the history follow. A read token suffices."""
    dashboard.sign_in(floy_server.tokens["read"])
    floy_server.env.register(1, prefix="dash-a-spare")  # never deployed: no version
    run_id, ids = start_deployment(floy_server, "dash-a", 3, batch_size="1")

    # listed among the running deployments, and opened by itself (none was open)
    first = dashboard.wait_run(lambda s: run_id in s["runs"] or s["run"] == run_id, 30,
                               f"{run_id} on the page")
    dashboard.wait_run(lambda s: s["run"] == run_id, 10, f"{run_id} opened by itself")
    assert first["message"] == "", first["message"]

    seen: dict[str, set[str]] = {i: set() for i in ids}

    def record(state: dict[str, Any]) -> None:
        for instance_id, cell in state["cells"].items():
            seen.setdefault(instance_id, set()).add(cell["status"])

    def in_flight(state: dict[str, Any]) -> bool:
        record(state)
        return any(c["status"] == "in_progress" for c in state["cells"].values())

    flying = dashboard.wait_run(in_flight, 60, "a cell in_progress")
    assert set(flying["cells"]) == set(ids), flying["cells"]
    assert flying["status"] == "in_progress" and flying["cancel_enabled"]
    # one row per batch (batch_size 1): three batches of one instance
    assert sorted(c["batch"] for c in flying["cells"].values()) == ["1", "2", "3"]
    dashboard.screenshot("-in-progress")
    busy = next(i for i, c in flying["cells"].items() if c["status"] == "in_progress")
    title = flying["cells"][busy]["title"]
    assert "phase" in title and "attempts" in title, title

    def all_completed(state: dict[str, Any]) -> bool:
        record(state)
        return (state["status"] == "completed"
                and all(c["status"] == "completed" for c in state["cells"].values()))

    done = dashboard.wait_run(all_completed, 120, "every cell completed and the run completed")
    assert done["status_text"] == "completed" and done["panel_status"] == "completed"
    assert not done["cancel_enabled"], "no cancel for a finished run"
    in_progress_seen = [i for i, statuses in seen.items() if "in_progress" in statuses]
    print(f"instances seen in progress on the page: {in_progress_seen}")
    assert in_progress_seen, seen
    assert api_status(floy_server, run_id)["status"] == "completed"

    # the services panel shows the new version, with the API's numbers
    expected = api_services(floy_server)["hello"]["version_summary"]
    assert expected.get("2.0.0", 0) >= 3, expected
    card = _until(lambda: (c := dashboard.service("hello")) and c["counts"] == expected and c,
                  15, f"the services panel to show {expected}")
    assert card["total"] == sum(expected.values())
    assert any(v == "2.0.0" and width > 0 for v, width in card["segments"]), card["segments"]
    assert "2.0.0" in card["text"]

    # and the history of hello has the run with its counters
    row = _until(lambda: (r := dashboard.history_row(run_id)) and r["status"] == "completed"
                 and r, 15, f"{run_id} completed in the history")
    assert (row["completed"], row["failed"], row["cancelled"], row["total"]) == (3, 0, 0, 3)

    # an instance that reports another version than recorded shows as drift
    with floy_server.client(token=floy_server.heartbeat_token(ids[1])) as client:
        beat = client.post(f"/v1/instances/{ids[1]}/heartbeat", json={"version": "2.0.1"})
    assert beat.status_code == 200 and beat.json()["drift"], beat.text
    drift = _until(lambda: dashboard.driver.execute_script(DRIFT_JS, "hello", ids[1]), 15,
                   f"drift of {ids[1]} on the services panel")
    assert drift[:2] == ["2.0.0", "2.0.1"], drift

    shot = dashboard.screenshot()
    assert shot.stat().st_size > 10_000


def test_dashboard_cancels_a_running_deployment(floy_server: FloyServer, dashboard: Dashboard
                                                ) -> None:
    """Cancel on the page (deployer token) stops a slow run: the page and the API agree."""
    dashboard.sign_in(floy_server.tokens["deployer"])
    run_id, ids = start_deployment(floy_server, "dash-b", 4, batch_size="1")
    dashboard.open_run(run_id)
    dashboard.wait_run(lambda s: s["cancel_enabled"] and any(
        c["status"] == "in_progress" for c in s["cells"].values()), 60,
        "an instance in progress and Cancel enabled")

    dashboard.driver.find_element(By.ID, "cancel-run").click()

    ended = dashboard.wait_run(lambda s: s["status"] == "cancelled", 60,
                               "the page to show the run cancelled")
    assert ended["status_text"] == "cancelled"
    assert not ended["cancel_enabled"]
    assert ended["message_kind"] in ("ok", "info"), ended["message"]
    assert run_id in ended["message"], ended["message"]
    assert "HTTP 200" in ended["message"] or "HTTP 202" in ended["message"], ended["message"]
    statuses = {c["status"] for c in ended["cells"].values()}
    assert "cancelled" in statuses and statuses <= {"completed", "cancelled"}, ended["cells"]

    final = api_wait_ended(floy_server, run_id)
    assert final["status"] == "cancelled"
    assert final["progress"]["cancelled"] >= 1
    on_page = dashboard.wait_run(
        lambda s: {i: c["status"] for i, c in s["cells"].items()}
        == {i["instance_id"]: i["status"] for i in final["instances"]},
        15, "the page's cells to match the API")
    assert set(on_page["cells"]) == set(ids)
    dashboard.screenshot()


def test_dashboard_cancel_with_a_read_token_is_refused(floy_server: FloyServer,
                                                       dashboard: Dashboard) -> None:
    """With a read-only token, Cancel shows the 403 and the run goes on to completion."""
    dashboard.sign_in(floy_server.tokens["read"])
    run_id, _ids = start_deployment(floy_server, "dash-c", 3, batch_size="1")
    dashboard.open_run(run_id)
    dashboard.wait_run(lambda s: s["cancel_enabled"], 60, "Cancel enabled")

    dashboard.driver.find_element(By.ID, "cancel-run").click()

    refused = dashboard.wait_run(lambda s: "403" in s["message"], 15, "the 403 message")
    assert refused["message_kind"] == "error"
    assert "forbidden" in refused["message"] and run_id in refused["message"]
    assert "read" in refused["message"], refused["message"]  # the server names the role
    dashboard.screenshot()
    # still signed in, and the run was not cancelled
    assert not dashboard.driver.find_element(By.ID, "token").is_displayed()
    final = api_wait_ended(floy_server, run_id)
    assert final["status"] == "completed", final
    dashboard.wait_run(lambda s: s["status"] == "completed", 30, "the page to show completed")

    # sign out: the token leaves the tab, the form comes back, nothing is shown any more
    driver = dashboard.driver
    driver.find_element(By.ID, "sign-out").click()
    _until(lambda: driver.find_element(By.ID, "token").is_displayed(), 10, "the token form")
    assert driver.execute_script("return sessionStorage.getItem('floy.token')") is None
    after = dashboard.state()
    assert after["run"] == "" and after["cells"] == {} and not after["cancel_enabled"], after
    assert not driver.find_elements(By.CSS_SELECTOR, "#services [data-service]")


# --------------------------------------------------------------------------- canaries

@pytest.fixture
def canaries(floy_server: FloyServer) -> Iterator[list[str]]:
    """The canary runs a test starts: any still unfinished at its end (a failed test
    leaves one paused) is cancelled, so that no worker waits for a promotion forever.
    Asked for before ``dashboard``, so that a failure's screenshot comes first."""
    runs: list[str] = []
    yield runs
    service = floy_server.env.service
    for run_id in runs:
        if service.get_deployment_status(run_id).finished_at is None:
            service.cancel_deployment(run_id)


def _paused_on_page(dashboard: Dashboard, run_id: str) -> dict[str, Any]:
    dashboard.open_run(run_id)
    return dashboard.wait_canary(
        lambda c: c["state"] == "paused" and c["promote"]["shown"] and c["promote"]["enabled"],
        90, f"{run_id} paused on the page, Promote enabled")


def test_dashboard_promotes_a_paused_canary(floy_server: FloyServer, canaries: list[str],
                                            dashboard: Dashboard) -> None:
    """A canary paused until promoted shows its steps and the pause; Promote on the page
    lets it finish, and the page names who promoted it."""
    dashboard.sign_in(floy_server.tokens["deployer"])
    ids = floy_server.env.register(2, prefix="dash-f")
    run_id = start_run(floy_server, f"dash-f-{uuid.uuid4().hex[:8]}", ids, "2.0.0",
                       {"steps": "1,pause,1"})
    canaries.append(run_id)

    paused = _paused_on_page(dashboard, run_id)
    assert paused["shown"] and paused["state_live"] == "polite"
    assert paused["state_text"] == "paused after batch 1 until promoted", paused["state_text"]
    assert paused["batches"] == [["1", "done"], ["2", "pending"]], paused["batches"]
    assert paused["gaps"] == [["1", "until promoted", "current"]], paused["gaps"]
    assert "Paused after batch 1 until promoted" in paused["banner"], paused["banner"]
    assert paused["promote_full"]["shown"] and paused["abort"]["shown"]
    assert paused["rollback_box"]["enabled"]
    assert not paused["analysis_shown"], "no analysis, no chart"
    assert paused["decisions"][-1] == "paused", paused["decisions"]
    dashboard.screenshot("-paused")

    dashboard.driver.find_element(By.ID, "promote-run").click()

    done = dashboard.wait_canary(
        lambda c: c["state"] == "finished"
        and "promoted by token:test-deployer" in c["state_text"], 90,
        "the page to show the canary finished, promoted by token:test-deployer")
    assert done["batches"] == [["1", "done"], ["2", "done"]], done["batches"]
    assert done["gaps"] == [["1", "until promoted", "passed"]], done["gaps"]
    assert not done["promote"]["shown"] and not done["abort"]["shown"], done
    assert "promoted" in done["decisions"], done["decisions"]
    page = dashboard.wait_run(lambda s: s["status"] == "completed", 15, "the run completed")
    assert page["message_kind"] == "ok", page["message"]
    assert f"Run {run_id} promoted by token:test-deployer (HTTP 200)" in page["message"]
    final = api_wait_ended(floy_server, run_id)
    assert final["status"] == "completed", final["error_message"]
    assert final["canary"]["promoted_by"] == "token:test-deployer"
    dashboard.screenshot()


def test_dashboard_aborts_a_paused_canary_and_rolls_back(floy_server: FloyServer,
                                                         canaries: list[str],
                                                         dashboard: Dashboard) -> None:
    """Abort with "and roll back" ticked: the canary ends cancelled and its rollback puts
    the switched instance back on 1.0.0."""
    env = floy_server.env
    ids = env.register(2, prefix="dash-g")
    base = start_run(floy_server, f"dash-g-base-{uuid.uuid4().hex[:8]}", ids, "1.0.0", {})
    dashboard.sign_in(floy_server.tokens["deployer"])
    assert api_wait_ended(floy_server, base)["status"] == "completed"
    run_id = start_run(floy_server, f"dash-g-{uuid.uuid4().hex[:8]}", ids, "2.0.0",
                       {"steps": "1,pause,1"})
    canaries.append(run_id)
    _paused_on_page(dashboard, run_id)

    dashboard.driver.find_element(By.ID, "abort-rollback").click()
    assert dashboard.driver.find_element(By.ID, "abort-rollback").is_selected()
    dashboard.driver.find_element(By.ID, "abort-run").click()

    ended = dashboard.wait_run(lambda s: s["status"] == "cancelled", 60,
                               "the page to show the canary cancelled")
    final = api_wait_ended(floy_server, run_id)
    assert final["status"] == "cancelled" and final["rollback_id"], final
    assert final["error_message"].startswith("aborted by token:test-deployer"), final
    page = dashboard.wait_run(lambda s: final["rollback_id"] in s["message"], 15,
                              "the message naming the rollback")
    assert page["message_kind"] == "ok", page["message"]
    assert f"Run {run_id} aborted: cancelled" in page["message"], page["message"]
    assert {c["status"] for c in ended["cells"].values()} == {"completed", "cancelled"}
    seen = dashboard.wait_canary(lambda c: c["state"] == "finished", 15, "canary finished")
    assert seen["batches"] == [["1", "done"], ["2", "cancelled"]], seen["batches"]
    assert seen["gaps"] == [["1", "until promoted", "not-reached"]], seen["gaps"]
    assert seen["decisions"][-1] == "aborted" and not seen["abort"]["shown"], seen

    rollback = env.wait(final["rollback_id"])
    assert rollback.status.value == "completed", rollback.error_message
    versions = {i.instance_id: i.version for i in
                env.service.get_service_instance_versions("hello").instances}
    assert {i: versions[i] for i in ids} == dict.fromkeys(ids, "1.0.0"), versions
    dashboard.screenshot()


def test_dashboard_charts_the_canary_analysis(floy_server: FloyServer, canaries: list[str],
                                              dashboard: Dashboard, pki: Pki) -> None:
    """The analysis measurements of a real metrics endpoint as an SVG chart (three ok
    points under the dashed max line); Promote with a read token shows the 403."""
    metrics = MetricsServer.start(pki, [0.01, 0.02, 0.03])
    try:
        dashboard.sign_in(floy_server.tokens["read"])
        ids = floy_server.env.register(2, prefix="dash-h")
        run_id = start_run(floy_server, f"dash-h-{uuid.uuid4().hex[:8]}", ids, "2.0.0", {
            "steps": "1,pause,1",
            "analysis": {"url": metrics.url, "query": "data.result[0].value[1]",
                         "max": 0.05, "count": 3, "interval": 0}})
        canaries.append(run_id)
        _paused_on_page(dashboard, run_id)
        chart = dashboard.wait_canary(lambda c: len(c["points"]) == 3, 15, "three points")
        assert chart["analysis_shown"] and not chart["chart_empty"]
        assert [p["value"] for p in chart["points"]] == ["0.01", "0.02", "0.03"], chart
        assert all(p["ok"] == "true" and p["batch"] == "1" for p in chart["points"])
        assert "0.02 at 20" in chart["points"][1]["title"], chart["points"][1]["title"]
        assert "ok" in chart["points"][1]["title"]
        assert [name for name, _y in chart["thresholds"]] == ["max"], chart["thresholds"]
        max_y = chart["thresholds"][0][1]
        # SVG y grows downwards: every point lies under the max line, and rises with its value
        ys = [p["cy"] for p in chart["points"]]
        assert all(y > max_y for y in ys) and ys[0] > ys[1] > ys[2], (ys, max_y)
        assert "3 taken, 0 failed" in chart["caption"], chart["caption"]
        assert "data.result[0].value[1]" in chart["caption"]
        assert chart["gaps"] == [["1", "until promoted", "current"]], chart["gaps"]
        assert chart["decisions"][-2:] == ["analysis_passed", "paused"], chart["decisions"]
        dashboard.screenshot("-paused")

        # a read token may see the buttons but not use them: the server's 403 is shown
        dashboard.driver.find_element(By.ID, "promote-run").click()
        refused = dashboard.wait_run(lambda s: "403" in s["message"], 15, "the 403 message")
        assert refused["message_kind"] == "error", refused["message"]
        assert f"Promotion of run {run_id} refused: HTTP 403 forbidden" in refused["message"]
        assert dashboard.canary()["promote"]["enabled"], "enabled again after the refusal"

        with floy_server.client("deployer") as client:
            answer = client.post(f"/v1/deployments/{run_id}/promote")
        assert answer.status_code == 200, answer.text
        final = api_wait_ended(floy_server, run_id)
        assert final["status"] == "completed", final["error_message"]
        assert len(final["canary"]["measurements"]) == 3  # none after the last batch
        done = dashboard.wait_canary(lambda c: c["state"] == "finished", 30, "finished")
        assert len(done["points"]) == 3 and "promoted by token:test-deployer" in \
            done["state_text"], done
    finally:
        metrics.stop()


# Installed before the page's own script (CDP): wraps fetch() so that every event stream
# reaches the page in pieces of 7 bytes (frames split across chunks), and the first one is
# cut off 40 bytes after its first frame (a dropped connection, mid-frame).
CHOPPY_STREAMS_JS = r"""
(() => {
  const realFetch = window.fetch.bind(window);
  const stats = window.__sse = {connections: 0, cut: 0, pieces: 0};
  window.fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input.url;
    const response = await realFetch(input, init);
    if (!/\/events$/.test(url) || !response.ok || !response.body) return response;
    const first = ++stats.connections === 1;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const queue = [];
    let text = '';
    let cutAt = Infinity;
    let sent = 0;
    const body = new ReadableStream({
      async pull(controller) {
        if (!queue.length) {
          const {value, done} = await reader.read();
          if (done) { controller.close(); return; }
          for (let i = 0; i < value.length; i += 7) queue.push(value.slice(i, i + 7));
        }
        const piece = queue.shift();
        if (first && cutAt === Infinity) {
          text += decoder.decode(piece, {stream: true});
          const end = text.search(/\r?\n\r?\n/);
          if (end >= 0) cutAt = end + 40;
        }
        if (sent + piece.length > cutAt) {
          stats.cut++;
          reader.cancel().catch(() => {});
          controller.close();
          return;
        }
        sent += piece.length;
        stats.pieces++;
        controller.enqueue(piece);
      },
      cancel(reason) { return reader.cancel(reason); },
    });
    return new Response(body, {status: response.status, headers: response.headers});
  };
})();
"""


def test_dashboard_stream_survives_chunking_and_a_drop(floy_server: FloyServer,
                                                       dashboard: Dashboard) -> None:
    """Event frames split across chunks still parse, and a stream dropped before ``end``
    is reopened (with backoff) until the run's end is seen."""
    driver = dashboard.driver
    script = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                    {"source": CHOPPY_STREAMS_JS})
    try:
        dashboard.sign_in(floy_server.tokens["read"])
        assert driver.execute_script("return window.__sse.connections") == 0
        run_id, ids = start_deployment(floy_server, "dash-d", 2, batch_size="1")
        dashboard.open_run(run_id)
        done = dashboard.wait_run(
            lambda s: s["status"] == "completed"
            and all(c["status"] == "completed" for c in s["cells"].values()), 120,
            "the run completed on the page despite the dropped stream")
        assert set(done["cells"]) == set(ids)
        stats = driver.execute_script("return window.__sse")
        print(f"event streams: {stats}")
        assert stats["cut"] == 1 and stats["connections"] >= 2, stats
        assert stats["pieces"] > 20, stats
        stream = driver.find_element(By.ID, "run-stream")
        assert stream.get_attribute("data-state") == "ended"
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument",
                               {"identifier": script["identifier"]})
    assert api_status(floy_server, run_id)["status"] == "completed"


def test_dashboard_refuses_bad_tokens(floy_server: FloyServer, dashboard: Dashboard) -> None:
    """A token the server does not know: a clear 401 message, and the form again; a
    token that may not read: a clear 403 message."""
    driver = dashboard.driver
    driver.get(dashboard.url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(dashboard.url + "/")
    driver.find_element(By.ID, "token").send_keys("floy_not-a-token")
    driver.find_element(By.ID, "use-token").click()
    state = dashboard.wait_run(lambda s: "401" in s["message"], 15, "the 401 message")
    assert state["message_kind"] == "error" and "token" in state["message"]
    assert driver.find_element(By.ID, "token").is_displayed()
    assert driver.execute_script("return sessionStorage.getItem('floy.token')") is None

    # a real token that may not read (a heartbeat token): a clear 403 message
    driver.find_element(By.ID, "token").send_keys(floy_server.heartbeat_token("dash-e-1"))
    driver.find_element(By.ID, "use-token").click()
    state = dashboard.wait_run(lambda s: "403" in s["message"], 15, "the 403 message")
    assert state["message_kind"] == "error" and "read or deployer" in state["message"]
    assert "heartbeat" in state["message"], state["message"]  # the server names the role
    assert driver.find_element(By.ID, "token").is_displayed()
    dashboard.screenshot()


def test_dashboard_writes_no_markup_from_data() -> None:
    """Server strings reach the page as text only: the script never parses markup."""
    lines = (STATIC / "dashboard.js").read_text(encoding="utf-8").splitlines()
    script = "\n".join(line for line in lines  # comments may name what is not done
                        if not line.lstrip().startswith(("//", "/*", "*")))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function"):
        assert sink not in script, sink


def test_sse_parser_handles_split_frames(browser: WebDriver, floy_server: FloyServer) -> None:
    """The page's own SSE parser, fed a stream cut at every offset (CRLF, LF, comments,
    multi-line data), dispatches the same events."""
    browser.get(floy_server.url.rstrip("/") + "/")
    result = browser.execute_script("""
      const {SseParser} = window.floyDashboard;
      const stream = ': keep-alive\\r\\n\\r\\nevent: status\\r\\ndata: {"a":\\r\\ndata: 1}'
        + '\\r\\n\\r\\nevent: end\\ndata:{"b":2}\\n\\n: ping\\n\\nevent: status\\rdata: 3\\r\\r';
      const run = (chunks) => { const out = []; const p = new SseParser((t, d) => out.push([t, d]));
        for (const c of chunks) p.push(c); p.finish(); return JSON.stringify(out); };
      const whole = run([stream]);
      for (let i = 0; i <= stream.length; i++)
        for (let j = i; j <= stream.length; j++)
          if (run([stream.slice(0, i), stream.slice(i, j), stream.slice(j)]) !== whole)
            return 'mismatch at ' + i + ',' + j;
      return whole;
    """)
    assert result == ('[["status","{\\"a\\":\\n1}"],["end","{\\"b\\":2}"],'
                      '["status","3"]]'), result

