"""The web console (/console) in a real browser: Debian's headless Chromium driven by Selenium through chromedriver,
against the stack of `make run`. `make test` installs both (scripts/browser.sh); nothing is downloaded here.

Every test reads the browser's console log after it ran: a SEVERE entry fails it, except the network errors of
answers the test expects (a refused key, another tenant's job), named one by one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import KEYS, Stack, start_stack, stop_stack
from tests.helpers import eventually
from tests.receiver import Receiver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 15
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1000")


def chromium(profile: Path) -> WebDriver:
    """Headless Chromium from Debian's package, through its chromedriver: Selenium Manager never runs (offline)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Chromium is missing: run `bash scripts/browser.sh` (make test does)")
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    return driver


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    browser = chromium(tmp_path_factory.mktemp("chromium"))
    yield browser
    browser.quit()


class Console:
    """The console in the browser, as a person uses it."""

    def __init__(self, driver: WebDriver, stack: Stack) -> None:
        self.driver, self.stack = driver, stack
        self.expected_errors: list[str] = []  # patterns of SEVERE log entries this test expects

    def open(self, path: str = "") -> None:
        self.driver.get(f"{self.stack.url}/console{path}")

    def wait(self, condition: Any, timeout_s: float = WAIT_S) -> Any:
        return WebDriverWait(self.driver, timeout_s, ignored_exceptions=[StaleElementReferenceException]).until(
            condition)

    def find(self, css: str) -> WebElement:
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css))

    def text(self, css: str) -> str:
        elements = self.driver.find_elements(By.CSS_SELECTOR, css)
        return str(elements[0].get_attribute("textContent")) if elements else ""

    def sign_in(self, key: str) -> None:
        self.open()
        field = self.find("#key")
        field.send_keys(key)
        self.driver.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()

    def sign_in_as(self, tenant: str) -> None:
        self.sign_in(KEYS[tenant])
        self.wait(lambda d: d.find_element(By.ID, "signout").is_displayed())

    def stored(self) -> str | None:
        return self.driver.execute_script("return sessionStorage.getItem('aijobs.console');")

    def severe(self) -> list[str]:
        entries = self.driver.get_log("browser")
        return [e["message"] for e in entries if e["level"] == "SEVERE"
                and not any(re.search(pattern, e["message"]) for pattern in self.expected_errors)]


@pytest.fixture
def console(driver: WebDriver, stack: Stack) -> Iterator[Console]:
    page = Console(driver, stack)
    driver.get(f"{stack.url}/console")
    driver.execute_script("sessionStorage.clear();")
    driver.get_log("browser")  # what an earlier test left
    yield page
    assert page.severe() == []
    driver.execute_script("sessionStorage.clear();")
    driver.get("about:blank")  # the page's polling ends here, not with the next test's key


def _row(console: Console, object_id: str) -> str:
    rows = console.driver.find_elements(By.XPATH, f"//tr[td[contains(., '{object_id}')]]")
    return str(rows[0].get_attribute("textContent")) if rows else ""


def _job(client: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def test_sign_in_shows_a_new_job_complete_and_sign_out_forgets_the_key(console: Console, stack: Stack) -> None:
    # Given a person signed in with the banner's key
    console.sign_in_as("tenant-a")
    assert KEYS["tenant-a"] in (console.stored() or "")
    # When a job is submitted
    with stack.client() as client:
        job = _job(client, input="console: appear and complete")
    # Then it appears in the list and completes there, without a reload
    console.wait(lambda d: job["id"] in console.text("#jobs"))
    row = f"//a[text()='{job['id']}']/ancestor::tr"
    console.wait(lambda d: "completed" in d.find_element(By.XPATH, row).text)
    # the list's filters are the API's: by model and kind it is there, as an embedding job it is not
    console.open(f"/jobs?model={job['model']}&kind=text&from=2000-01-01T00:00")
    console.wait(lambda d: job["id"] in console.text("#jobs"))
    console.open("/jobs?kind=embedding&to=2000-01-01T00:00")
    console.wait(lambda d: "No jobs match." in console.text("#jobs"))
    console.open()
    # the keyboard: the first Tab stop skips to the content
    ActionChains(console.driver).send_keys(Keys.TAB).perform()
    assert console.driver.switch_to.active_element.text == "Skip to content"
    ActionChains(console.driver).send_keys(Keys.ENTER).perform()
    console.wait(lambda d: d.switch_to.active_element.get_attribute("id") == "main")
    # and the key was never in a URL the page loaded or called
    urls = console.driver.execute_script("return performance.getEntries().map(e => e.name).concat([location.href]);")
    assert urls and not [url for url in urls if KEYS["tenant-a"] in url]
    # When they sign out, the key is gone and the sign-in form is back
    console.driver.find_element(By.ID, "signout").click()
    console.find("#signin")
    assert console.stored() is None


def test_job_page_shows_the_output_grow_as_it_streams(console: Console, stack: Stack) -> None:
    console.sign_in_as("tenant-a")
    with stack.client() as client:
        job = _job(client, input="console stream [[tokens=40]] [[token_ms=100]]", stream=True)
        console.open(f"/jobs/{job['id']}")
        # the output grows while the job runs (about 4 s of tokens), then the final event ends the history
        first = console.wait(lambda d: len(console.text("#output")) > 0 and "completed" not in console.text("#history")
                             and len(console.text("#output")))
        console.wait(lambda d: len(console.text("#output")) > first and "completed" not in console.text("#history"))
        console.wait(lambda d: "completed" in console.text("#history"))
        final = client.get(f"/v1/jobs/{job['id']}").json()
    assert console.text("#output") == final["output"]["text"]
    assert '"input": "console stream [[tokens=40]]' in console.text("#request")  # the body it was made from
    assert "in_progress" in console.text("#history")
    assert "completed" in console.text("#job-details") and str(final["usage"]["output_tokens"]) in console.text(
        "#job-details")


def test_cancel_button_stops_a_running_job(console: Console, stack: Stack) -> None:
    with stack.client() as client:
        job = _job(client, input="console cancel [[tokens=200]] [[token_ms=100]]", stream=True)
        console.sign_in_as("tenant-a")
        console.open(f"/jobs/{job['id']}")
        console.wait(lambda d: len(console.text("#output")) > 0)  # running: its output has begun
        console.find("#cancel").click()
        console.wait(lambda d: "Cancelled: the job is cancelled" in console.text("#outcome"))
        console.wait(lambda d: "cancelled" in console.text("#history"))
        assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    assert console.find("#retry").is_enabled() and not console.find("#cancel").is_enabled()


def test_retry_button_reruns_a_failed_job(console: Console, stack: Stack) -> None:
    with stack.client() as client:
        job = _job(client, input="console retry [[fail=400]]")
        eventually(lambda: client.get(f"/v1/jobs/{job['id']}").json()["status"] == "failed")
        console.sign_in_as("tenant-a")
        console.open(f"/jobs/{job['id']}")
        console.wait(lambda d: d.find_element(By.ID, "retry").is_enabled())
        console.find("#retry").click()
        console.wait(lambda d: "Retried as job_" in console.text("#outcome"))
        retried_by = client.get(f"/v1/jobs/{job['id']}").json()["retried_by"]
    assert retried_by and retried_by in console.text("#outcome")
    console.driver.find_element(By.CSS_SELECTOR, "#outcome a").click()  # the new job's page
    console.wait(lambda d: retried_by in d.current_url and job["id"] in console.text("#job-details"))


def test_webhook_attempts_show_and_redeliver_adds_one(console: Console, stack: Stack, receiver: Receiver) -> None:
    with stack.client() as client:
        job = _job(client, input="console webhook", callback_url=f"{receiver.url}/hooks")
    console.sign_in_as("tenant-a")
    console.open(f"/jobs/{job['id']}")
    console.wait(lambda d: "delivered" in console.text("#deliveries") and "200" in console.text("#deliveries"))
    console.find("#redeliver").click()
    console.wait(lambda d: "Redelivery queued: attempt 2" in console.text("#outcome"))
    console.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#deliveries tbody tr")) == 2
                 and console.text("#deliveries").count("delivered") == 2)
    assert len(receiver.received) == 2


def _chart_table(console: Console, chart: str) -> dict[str, dict[str, float]]:
    """The points a chart plots, from its table: {day: {series: value}}."""
    rows = console.driver.execute_script("""
        return [...document.querySelectorAll(arguments[0] + ' tbody tr')].map(tr => [tr.querySelector('th').textContent,
          Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.series, Number(td.dataset.value)]))]);
    """, f"#{chart}-table")
    return dict(rows)


# How many pixels of the canvas have the first series' colour (#0b5cad): the line and points of real data.
_SERIES_PIXELS = """
const canvas = document.querySelector(arguments[0] + ' canvas');
const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let count = 0;
for (let i = 0; i < pixels.length; i += 4) {
  if (Math.abs(pixels[i] - 11) < 30 && Math.abs(pixels[i + 1] - 92) < 30 && Math.abs(pixels[i + 2] - 173) < 30
      && pixels[i + 3] > 200) count += 1;
}
return count;
"""


def _differences(console: Console, api: dict[str, Any]) -> list[str]:
    """Where the charts' points differ from the API's usage; `requests` is the API's own count, which the page's and
    this test's calls made after the page's `GET /v1/usage` (its jobs by model, this read) add to: at most 2."""
    jobs, tokens, cost = (_chart_table(console, name) for name in ("chart-jobs", "chart-tokens", "chart-cost"))
    if sorted(jobs) != [d["date"] for d in api["data"]]:
        return [f"days {sorted(jobs)}"]
    wrong = []
    for d in api["data"]:
        day = d["date"]
        plotted = {"jobs": jobs[day]["Jobs"], "input_tokens": tokens[day]["Input tokens"],
                   "output_tokens": tokens[day]["Output tokens"], "cost_usd": pytest.approx(cost[day]["Cost"]),
                   "hard": cost[day]["Hard budget"], "soft": cost[day]["Soft budget"]}
        wanted = {"jobs": d["jobs"], "input_tokens": d["input_tokens"], "output_tokens": d["output_tokens"],
                  "cost_usd": d["cost_usd"], "hard": api["limits"]["daily_cost_usd"],
                  "soft": api["limits"]["daily_cost_soft_usd"]}
        if plotted != wanted or not 0 <= d["requests"] - jobs[day]["Requests"] <= 2:
            wrong.append(f"{day}: plotted {plotted}, requests {jobs[day]['Requests']}; API {wanted}, {d['requests']}")
    return wrong


def test_usage_chart_plots_the_apis_usage(console: Console, stack: Stack) -> None:
    with stack.client() as client:
        job = _job(client, input="console usage")
        eventually(lambda: client.get(f"/v1/jobs/{job['id']}").json()["status"] == "completed")
        console.sign_in_as("tenant-a")
        differences: list[str] = []
        for _ in range(3):  # a job of another test may end meanwhile: the page and the API then agree on a reload
            console.open("/usage")
            console.find("#chart-models-table")  # the page's last call is done
            if not (differences := _differences(console, client.get("/v1/usage").json())):
                break
    assert differences == []
    # and the canvases are drawn: the series' colour is on them, not only axes and grid
    assert console.driver.execute_script(_SERIES_PIXELS, "#chart-jobs-plot") > 20
    assert console.driver.execute_script(_SERIES_PIXELS, "#chart-cost-plot") > 10


def test_another_tenants_job_is_not_found(console: Console, stack: Stack) -> None:
    with stack.client("tenant-b") as client:
        job = _job(client, input="console: tenant b's")
    console.expected_errors = [re.escape(f"/v1/jobs/{job['id']} - Failed to load resource: the server responded "
                                         "with a status of 404")]
    console.sign_in_as("tenant-a")
    console.open(f"/jobs/{job['id']}")
    alert = console.find("#alert")
    console.wait(lambda d: "404 not_found" in alert.text)
    assert "request id" in alert.text and alert.get_attribute("role") == "alert"
    console.open("/jobs")
    console.find("#jobs table, #jobs p:not(.muted)")
    assert job["id"] not in console.text("#jobs")


def test_a_bad_key_is_refused_with_the_apis_error(console: Console, stack: Stack) -> None:
    console.expected_errors = [
        re.escape("/v1/usage - Failed to load resource: the server responded with a status of 401")]
    console.sign_in("aj_not_a_key")
    alert = console.find("#alert")
    console.wait(lambda d: "401 authentication" in alert.text)
    assert "request id" in alert.text and console.stored() is None
    assert console.driver.find_elements(By.ID, "signin")
    assert not console.driver.find_element(By.ID, "nav").is_displayed()


def test_schedules_page_shows_next_fires_disables_and_runs_now(console: Console, stack: Stack) -> None:
    with stack.client() as client:
        schedule = client.post("/v1/schedules", json={"expression": "rate(1 hour)", "job": {"input": "console fire"}})
        assert schedule.status_code == 201, schedule.text
        schedule_id = schedule.json()["id"]
        console.sign_in_as("tenant-a")
        console.open("/schedules")
        console.wait(lambda d: "UTC" in _row(console, schedule_id))  # its next fire times
        console.find(f"#toggle-{schedule_id}").click()
        console.wait(lambda d: f"Schedule {schedule_id} is disabled" in console.text("#status"))
        console.wait(lambda d: "none" in _row(console, schedule_id))  # disabled: no next fire
        assert client.get(f"/v1/schedules/{schedule_id}").json()["enabled"] is False
        console.find(f"#run-{schedule_id}").click()
        fired = console.wait(lambda d: re.search(f"Schedule {schedule_id} fired: job (job_\\w+)",
                                                 console.text("#status")))
        made = [job["id"] for job in client.get("/v1/jobs", params={"schedule_id": schedule_id}).json()["data"]]
        assert fired.group(1) in made
        console.driver.find_element(By.LINK_TEXT, "Jobs of its fires").click()
        console.wait(lambda d: fired.group(1) in console.text("#jobs"))


def test_batches_page_shows_counts_and_cancels_a_batch(console: Console, stack: Stack) -> None:
    with stack.client() as client:
        batch = client.post("/v1/jobs/batch", json={"jobs": [
            {"input": f"console batch {n} [[tokens=200]] [[token_ms=100]]"} for n in range(3)]})
        assert batch.status_code == 202, batch.text
        batch_id = batch.json()["batch_id"]
        console.sign_in_as("tenant-a")
        console.open("/batches")
        console.wait(lambda d: "in_progress" in _row(console, batch_id))
        console.find(f"#cancel-{batch_id}").click()
        console.wait(lambda d: f"Batch {batch_id} is cancel" in console.text("#status"))
        console.wait(lambda d: "cancelled" in _row(console, batch_id) and "in_progress" not in _row(console, batch_id))
        answer = client.get(f"/v1/batches/{batch_id}").json()
    assert answer["status"] == "cancelled" and answer["counts"]["cancelled"] == 3


ADMIN_KEY = "aj_e2e_console_admin_key_0123456789"


def test_the_operator_sees_a_tenants_limits_and_usage(driver: WebDriver,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    process, admin_stack = start_stack(tmp_path_factory.mktemp("console-admin") / "stack.log",
                                       AIJOBS_ADMIN_KEY=ADMIN_KEY)
    try:
        with httpx.Client(base_url=admin_stack.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
            assert admin.put("/v1/admin/tenants/tenant-b/limits", json={"requests_per_minute": 77}).status_code == 200
        console = Console(driver, admin_stack)
        console.open()
        driver.get_log("browser")  # what an earlier test left
        console.find("#key").send_keys(ADMIN_KEY)
        driver.find_element(By.ID, "role-admin").click()
        driver.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()
        console.wait(lambda d: "Signed in as the operator" in console.text("#who"))
        # every tenant is listed (GET /v1/admin/tenants), each a link to its limits and usage
        console.wait(lambda d: d.find_elements(By.LINK_TEXT, "tenant-a"))
        console.wait(lambda d: d.find_elements(By.LINK_TEXT, "tenant-b")).__getitem__(0).click()
        console.wait(lambda d: "requests_per_minute" in console.text("#limits"))
        assert "77" in _row(console, "77")
        console.find("#chart-cost-table")
        # a tenant's page is not the operator's: the tenants' pages send the operator back to its own
        console.open("/jobs")
        console.find("#a-tenant")
        assert console.severe() == []
        driver.execute_script("sessionStorage.clear();")
        driver.get("about:blank")
    finally:
        stop_stack(process)
