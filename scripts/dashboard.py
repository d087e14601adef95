#!/usr/bin/env python3
"""Drives errand's dashboard in headless Chromium (Debian's chromium and
chromium-driver, through selenium) against a running `errand serve` whose
configuration is crates/errand/tests/dashboard.rs's.

Usage: dashboard.py BASE_URL SCREENSHOT_DIR

Checks: every page loads with no browser console error; a queue is paused
from the Queues page by keyboard alone and resumed by a click, and the row
shows each state; a failed job is retried from its page and shows
`available`; the overview's counts move as jobs complete, without a reload.
Saves a screenshot of each page at 1280 px and at phone width. Exits
non-zero, naming the check, on the first failure."""

import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException

BASE, SHOTS = sys.argv[1].rstrip("/"), sys.argv[2]
PAGES = ["/", "/jobs", "/queues", "/kinds", "/nodes", "/schedules", "/events", "/batches", "/audit", "/login"]
WIDTHS = {"desktop": (1280, 1000), "phone": (390, 844)}


TOKEN = os.environ.get("ERRAND_TOKEN")


def api(method, path, body=None):
    """Calls the API, with the token when the server requires one."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if TOKEN:
        headers["Authorization"] = "Bearer " + TOKEN
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}") from None


def eventually(what, check, limit=20.0):
    """Polls `check` until it answers truthy; fails naming `what`."""
    deadline = time.monotonic() + limit
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.1)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--hide-scrollbars", "--force-device-scale-factor=1"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def load(driver, path):
    driver.get(BASE + path)
    eventually(f"{path} to load", lambda: driver.execute_script("return document.readyState") == "complete")
    assert driver.find_element(By.TAG_NAME, "h1").text, f"{path} has a heading"
    errors = console_errors(driver)
    assert not errors, f"{path}: console errors {errors}"


def seed():
    """Jobs of every kind, a failed one, an event and a batch."""
    ok = [api("POST", "/v1/jobs", {"kind": "ok", "payload": {"n": i, "note": "<i>x</i>"}, "tags": ["seed"]})
          for i in range(3)]
    boom = api("POST", "/v1/jobs", {"kind": "boom", "payload": {"big": "y" * 3000}})
    api("POST", "/v1/events", {"name": "order.paid", "data": {"order": 7}})
    batch = api("POST", "/v1/batches", {"jobs": [{"kind": "ok"}, {"kind": "report"}]})
    for job in ok + [boom]:
        api("GET", f"/v1/jobs/{job['id']}?wait=5s")
    failed = api("GET", f"/v1/jobs/{boom['id']}")
    assert failed["state"] == "failed", failed
    return failed["id"], batch['batch']['id']


def log_in(driver):
    """Auth on: a page sends the browser to /login; a wrong token is
    refused there; the right one opens a session and the overview."""
    driver.get(BASE + "/queues")
    eventually("the login page", lambda: driver.current_url.endswith("/login"))
    field = driver.find_element(By.CSS_SELECTOR, "#token")
    field.send_keys("errand_" + "0" * 64)
    field.submit()
    eventually("the refusal", lambda: (text_of(driver, "#flash") or "").strip())
    assert driver.current_url.endswith("/login")
    field = driver.find_element(By.CSS_SELECTOR, "#token")
    field.clear()
    field.send_keys(TOKEN)
    field.submit()
    eventually("the overview", lambda: driver.current_url.rstrip("/") == BASE)
    cookie = driver.get_cookie("errand_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    driver.get_log("browser")  # the refused login's 401 is not a page error


def screenshots(driver, batch, job):
    for name, (w, h) in WIDTHS.items():
        driver.set_window_size(w, h)
        for path in PAGES + [f"/batches?id={batch}", f"/jobs/{job}", "/jobs?text=disk+full"]:
            load(driver, path)
            stem = path.strip("/").replace("?", "-").replace("=", "-").replace("/", "-").replace("+", "-") or "overview"
            driver.save_screenshot(os.path.join(SHOTS, f"{stem}-{name}.png"))


def text_of(driver, css):
    """The text of the first element matching `css`, or None; a part
    swapped out while being read (live update) reads as None."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else None
    except StaleElementReferenceException:
        return None


def queue_row_state(driver, queue):
    return text_of(driver, f'tr[data-queue="{queue}"] [data-queue-state]')


def pause_and_resume(driver):
    driver.set_window_size(*WIDTHS["desktop"])
    load(driver, "/queues")
    driver.execute_script("window.__same_page = true")
    assert queue_row_state(driver, "reports") == "running", "reports starts running"
    # Keyboard only: Tab until the pause button of `reports` has focus.
    body = driver.find_element(By.TAG_NAME, "body")
    body.click()
    for _ in range(80):
        focused = driver.switch_to.active_element
        if focused.get_attribute("data-post") == "/v1/queues/reports/pause":
            break
        focused.send_keys(Keys.TAB)
    else:
        raise AssertionError("Tab never reached the Pause reports button")
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    eventually("reports shown paused", lambda: queue_row_state(driver, "reports") == "paused")
    assert api("GET", "/v1/queues") and any(
        q["name"] == "reports" and q["paused"] for q in api("GET", "/v1/queues")["queues"]), "paused in the store"
    focused = driver.switch_to.active_element
    assert focused.get_attribute("data-post") == "/v1/queues/reports/resume", \
        "focus stays on the queue's button after the refresh"
    driver.find_element(By.CSS_SELECTOR, 'button[data-post="/v1/queues/reports/resume"]').click()
    eventually("reports shown running", lambda: queue_row_state(driver, "reports") == "running")
    assert not any(q["name"] == "reports" and q["paused"] for q in api("GET", "/v1/queues")["queues"])
    assert driver.execute_script("return window.__same_page === true"), "no full reload"
    assert not console_errors(driver)


def open_alert(driver):
    try:
        return driver.switch_to.alert
    except NoAlertPresentException:
        return None


def bulk_progress(driver):
    return text_of(driver, "[data-bulk-progress]") or ""


def bulk_in_browser(driver):
    """Retries every job a filter matches (a tag: checked per chunk), then
    cancels selected jobs, from the Jobs page: confirmed, followed to the
    end, audited."""
    boom = [api("POST", "/v1/jobs", {"kind": "boom", "payload": {"bulk": i}, "tags": ["bulk"]})
            for i in range(3)]
    for job in boom:
        api("GET", f"/v1/jobs/{job['id']}?wait=5s")
    ids = [job["id"] for job in boom]
    assert all(api("GET", f"/v1/jobs/{i}")["state"] == "failed" for i in ids)
    # Retried jobs must stay available to be seen (and cancelled).
    api("POST", "/v1/queues/fragile/pause")
    driver.set_window_size(*WIDTHS["desktop"])
    load(driver, "/jobs?kind=boom&state=failed&tag=bulk")
    driver.find_element(By.CSS_SELECTOR, "[data-bulk-action] option[value=retry]").click()
    driver.find_element(By.CSS_SELECTOR, 'button[data-bulk="filter"]').click()
    alert = eventually("the confirmation", lambda: open_alert(driver))
    assert "every job matching the filter (up to " in alert.text, alert.text
    alert.accept()
    eventually("the retry to end", lambda: ": done," in bulk_progress(driver))
    assert "3 changed" in bulk_progress(driver), bulk_progress(driver)
    assert all(api("GET", f"/v1/jobs/{i}")["state"] == "available" for i in ids)

    load(driver, "/jobs?kind=boom&state=available")
    for i in ids:
        driver.find_element(By.CSS_SELECTOR, f'input[name="select"][value="{i}"]').click()
    assert text_of(driver, "[data-selected]") == "3 selected"
    driver.find_element(By.CSS_SELECTOR, "[data-bulk-action] option[value=cancel]").click()
    driver.find_element(By.CSS_SELECTOR, 'button[data-bulk="selected"]').click()
    alert = eventually("the confirmation", lambda: open_alert(driver))
    assert "3 selected" in alert.text, alert.text
    alert.accept()
    eventually("the cancel to end", lambda: ": done," in bulk_progress(driver))
    assert all(api("GET", f"/v1/jobs/{i}")["state"] == "cancelled" for i in ids)
    api("POST", "/v1/queues/fragile/resume")
    audit = api("GET", "/v1/audit?action=bulk.retry")["entries"]
    assert len(audit) == 1 and '"tag":"bulk"' in audit[0]["target"], audit
    cancel = api("GET", "/v1/audit?action=bulk.cancel")["entries"]
    assert len(cancel) == 1 and cancel[0]["target"] == "3 ids", cancel
    load(driver, "/audit")
    assert "bulk.cancel" in driver.find_element(By.TAG_NAME, "main").text
    assert not console_errors(driver)


def pool_processes(driver):
    """The Nodes page lists this node's two pool processes with the jobs
    they answered."""
    jobs = [api("POST", "/v1/jobs", {"kind": "pooled"}) for _ in range(4)]
    for job in jobs:
        done = api("GET", f"/v1/jobs/{job['id']}?wait=5s")
        assert done["state"] == "completed", done
    load(driver, "/nodes")
    rows = driver.find_elements(By.XPATH, "//td[@data-pid]/..")
    assert len(rows) == 2, [r.text for r in rows]
    cells = [[c.text for c in r.find_elements(By.XPATH, "./*")] for r in rows]
    assert all(c[0] == "pooled" and int(c[1]) > 0 for c in cells), cells
    assert sum(int(c[2]) for c in cells) == 4, cells
    assert all(c[3].endswith("MiB") for c in cells), cells
    assert not console_errors(driver)


def retry_failed(driver, job_id):
    # Its queue is paused so the retried job stays available to be seen.
    api("POST", "/v1/queues/fragile/pause")
    load(driver, f"/jobs/{job_id}")
    state = lambda: text_of(driver, "[data-job-state]")
    assert state() == "failed", state()
    assert "disk full <b>" in driver.find_element(By.CSS_SELECTOR, "pre.error-text").text, "the error is shown as text"
    assert driver.find_elements(By.CSS_SELECTOR, "main details"), "the large payload is folded"
    driver.find_element(By.CSS_SELECTOR, f'button[data-post="/v1/jobs/{job_id}/retry"]').click()
    eventually("the job shown available", lambda: state() == "available")
    assert api("GET", f"/v1/jobs/{job_id}")["state"] == "available"
    assert not console_errors(driver)


def run_now(driver):
    """A job scheduled an hour ahead runs at once from its page."""
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    job = api("POST", "/v1/jobs", {"kind": "report", "run_at": later})
    assert job["state"] == "scheduled", job
    job_id = job["id"]
    load(driver, f"/jobs/{job_id}")
    driver.find_element(By.XPATH, "//button[normalize-space()='Run now']").click()
    done = eventually("the job to run", lambda: api("GET", f"/v1/jobs/{job_id}?wait=1s")["state"] == "completed")
    assert done
    eventually("the page to show it ran", lambda: text_of(driver, "[data-job-state]") != "scheduled")
    assert api("GET", "/v1/audit?action=bulk.run_now")["entries"][0]["target"] == "1 ids"
    assert not console_errors(driver)


def overview_updates_live(driver):
    load(driver, "/")
    driver.execute_script("window.__same_page = true")
    count = lambda: int(text_of(driver, '[data-state="completed"]') or -1)
    before = eventually("the completed count", lambda: [n for n in [count()] if n >= 0])[0]
    jobs = [api("POST", "/v1/jobs", {"kind": "ok"}) for _ in range(5)]
    for job in jobs:
        api("GET", f"/v1/jobs/{job['id']}?wait=5s")
    eventually("the completed count to grow by 5", lambda: count() >= before + 5, limit=15)
    assert driver.execute_script("return window.__same_page === true"), "updated without a reload"
    assert not console_errors(driver)


def main():
    os.makedirs(SHOTS, exist_ok=True)
    started = time.monotonic()
    failed_id, batch = seed()
    driver = browser()
    try:
        if TOKEN:
            log_in(driver)
            print("dashboard: login refuses a wrong token and opens a session with the right one")
        screenshots(driver, batch, failed_id)
        print("dashboard: every page loads without console errors (2 widths)")
        pool_processes(driver)
        print("dashboard: the Nodes page shows the pool's processes")
        bulk_in_browser(driver)
        print("dashboard: bulk retry of a filter (tag) and bulk cancel of selected jobs, audited")
        pause_and_resume(driver)
        print("dashboard: pause (keyboard) and resume from the Queues page")
        retry_failed(driver, failed_id)
        print("dashboard: retry a failed job from its page")
        run_now(driver)
        print("dashboard: run a scheduled job now from its page")
        overview_updates_live(driver)
        print("dashboard: the overview updates live")
    finally:
        driver.quit()
    print(f"dashboard: all checks passed in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
