"""Screenshots of the console's pages for the README (docs/console/<page>.png), from a running local stack.

    AIJOBS_ADMIN_KEY=aj_admin_demo_key_0123456789 AIJOBS_DEV_API_KEYS=acme:aj_dev_acme \\
        AIJOBS_ALLOW_PRIVATE_CALLBACKS=1 make run        # in one shell
    .venv/bin/python scripts/console_screenshots.py --key aj_dev_acme --admin-key aj_admin_demo_key_0123456789

It makes a few objects through the API first (jobs that complete, fail, stream, and deliver a webhook to a receiver
it runs on 127.0.0.1; a batch; a schedule), then drives Debian's headless Chromium (`bash scripts/browser.sh`) over
each page. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

OUT = Path(__file__).resolve().parents[1] / "docs" / "console"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--hide-scrollbars")


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def seed(client: httpx.Client, receiver: str) -> str:
    """Objects worth seeing; answers the id of the job whose page is shown (streaming while the shot is taken)."""
    for prompt in ("Summarise the quarterly report", "Draft a release note", "Translate the FAQ into French"):
        client.post("/v1/jobs", json={"input": prompt, "callback_url": receiver})
    client.post("/v1/jobs", json={"input": "A job the model refuses [[fail=400]]"})
    client.post("/v1/jobs/batch", json={"jobs": [{"input": f"Classify ticket {n} [[tokens=80]] [[token_ms=150]]"}
                                                 for n in range(8)]})
    client.post("/v1/schedules", json={"expression": "cron(0 9 ? * MON-FRI *)", "timezone": "Europe/Paris",
                                       "job": {"input": "Morning digest of open incidents"}})
    client.post("/v1/schedules", json={"expression": "rate(1 hour)", "enabled": False,
                                       "job": {"input": "Hourly spend check"}})
    time.sleep(2)
    return str(client.post("/v1/jobs", json={"input": "Write a haiku about queues [[tokens=150]] [[token_ms=120]]",
                                             "stream": True, "callback_url": receiver}).json()["id"])


def browser(profile: str) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)


def shoot(driver: WebDriver, name: str, *, full: bool = False) -> None:
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(int(height) + 40, 4000))
        time.sleep(0.5)
    driver.save_screenshot(str(OUT / f"{name}.png"))
    driver.set_window_size(1280, 900)
    print(f"docs/console/{name}.png")


def sign_in(driver: WebDriver, url: str, key: str, *, admin: bool = False) -> None:
    driver.get(f"{url}/console")
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "key"))[0].send_keys(key)
    if admin:
        driver.find_element(By.ID, "role-admin").click()
    driver.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()
    WebDriverWait(driver, 10, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.find_element(By.ID, "signout").is_displayed())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="a tenant's API key (from the make run banner)")
    parser.add_argument("--admin-key", help="the stack's AIJOBS_ADMIN_KEY, for the operator's page")
    parser.add_argument("--tenant", default="acme", help="the key's tenant, whose limits the operator sets")
    args = parser.parse_args()
    if args.admin_key:  # budgets near the day's spend, so that the cost chart shows them with it
        httpx.put(f"{args.url}/v1/admin/tenants/{args.tenant}/limits", timeout=30,
                  headers={"Authorization": f"Bearer {args.admin_key}"},
                  json={"daily_cost_usd": 0.01, "daily_cost_soft_usd": 0.005, "requests_per_minute": 120}
                  ).raise_for_status()
    OUT.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {args.key}"}, timeout=30) as client:
        job_id = seed(client, f"http://127.0.0.1:{server.server_port}/hooks")
    driver = browser(tempfile.mkdtemp())
    try:
        driver.get(f"{args.url}/console")
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "key"))
        shoot(driver, "signin")
        sign_in(driver, args.url, args.key)
        driver.get(f"{args.url}/console/jobs/{job_id}")
        time.sleep(3)  # the output half made
        shoot(driver, "job", full=True)
        for page in ("jobs", "batches", "schedules"):
            driver.get(f"{args.url}/console/{page}")
            time.sleep(2.5)
            shoot(driver, page)
        driver.get(f"{args.url}/console/usage")
        time.sleep(3)
        shoot(driver, "usage", full=True)
        if args.admin_key:
            driver.execute_script("sessionStorage.clear();")
            sign_in(driver, args.url, args.admin_key, admin=True)
            driver.get(f"{args.url}/console/admin?tenant={args.tenant}")
            time.sleep(3)
            shoot(driver, "admin", full=True)
    finally:
        driver.quit()
        server.shutdown()


if __name__ == "__main__":
    main()
