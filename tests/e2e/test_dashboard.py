"""The dashboard driven in headless Chromium (Debian's chromium and chromium-driver), over the
real pipeline: PostgreSQL, Redis, a worker and a scheduler process, receivers on 127.0.0.1.

Login with the API's credentials, a failing receiver's delivery going dead and its Replay
from the dead-letter page, a 410-disabled hook's Enable, a viewer who cannot change, a second
tenant who sees none of the first one's data, a form without its CSRF token refused, logout.
Every page is photographed; with DOO_WEBHOOKS_SCREENSHOTS=docs/screenshots the pictures
docs/dashboard.md shows are made anew.

Why Selenium: it drives the chromium the system already has, through its chromedriver,
with nothing downloaded at run time (no browser bundle, no driver manager): the driver is
named explicitly and SE_OFFLINE keeps Selenium Manager off. chromedriver runs through the
suite's isolation Popen, so it and the chromium in its process group die with the test run.
One browser serves the whole module; waits poll the ledger or the page, never sleep.
"""

import os
import pathlib
import subprocess
import tempfile
import threading

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from tests.e2e.conftest import order
from tests.support import isolation
from tests.support.servers import scripted
from tests.support.tenants import new_tenant

from selenium import webdriver  # noqa: E402  (never skipped: .ci/run installs chromium)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# docs/screenshots/ is remade on request (DOO_WEBHOOKS_SCREENSHOTS=docs/screenshots): an
# ordinary run takes them too, into a folder of its own, and leaves the checkout as it was
SCREENSHOTS = pathlib.Path(os.environ.get("DOO_WEBHOOKS_SCREENSHOTS")
                           or pathlib.Path(tempfile.gettempdir()) / f"doo-webhooks-screenshots-{os.getpid()}")


class IsolatedService(Service):
    """chromedriver started by the suite's Popen: a process group of its own that dies with
    pytest, killed whole by the guard even when pytest is SIGKILLed (chromium with it)."""

    def _start_process(self, path):
        self.process = isolation.Popen([path, *self.command_line_args()], env=self.env, stdout=self.log_output,
                                       stderr=self.log_output, stdin=subprocess.PIPE, close_fds=True)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("the dashboard's e2e tests need Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver; .ci/run installs them)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps", "--disable-extensions", "--no-proxy-server",
                 "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    service = IsolatedService(executable_path=CHROMEDRIVER, log_output=str(log))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()  # stops chromium and the service (isolation's group kill backs it up)


class Dashboard:
    """The pipeline's app on a port of its own, and the browser pointed at it."""

    def __init__(self, pipeline, driver):
        self.pipeline, self.driver = pipeline, driver
        self.server = make_server("127.0.0.1", 0, pipeline.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        driver.delete_all_cookies()

    def open(self, path):
        self.driver.get(self.base + path)
        return self

    def login(self, tenant):
        self.open("/dashboard/login")
        for field, value in (("api_key", tenant.api_key), ("client_id", tenant.client_id),
                             ("client_secret", tenant.client_secret)):
            self.driver.find_element(By.ID, field).send_keys(value)
        self.click(By.ID, "login")
        self.wait_for(lambda d: d.current_url.rstrip("/").endswith("/dashboard"))

    def click(self, by, value):
        self.driver.find_element(by, value).click()

    def text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait_for(self, predicate, timeout=20):
        # a page being replaced (a form just sent) can drop the element a predicate is reading:
        # that poll found nothing yet, the next one reads the new page
        WebDriverWait(self.driver, timeout, poll_frequency=0.05,
                      ignored_exceptions=(StaleElementReferenceException,)).until(predicate)

    def reload_until(self, path, predicate, what, timeout=30):
        """Open ``path`` again until ``predicate(page text)`` holds (the workers change the ledger)."""
        def ready(driver):
            self.open(path)
            return predicate(self.text())
        try:
            self.wait_for(ready, timeout)
        except Exception:
            raise AssertionError(f"timed out waiting for {what}; page: {self.text()[:1500]}") from None

    def shot(self, name):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1400, min(max(height, 700), 2400))
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        self.driver.set_window_size(1400, 1000)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dashboard(pipeline_factory, browser):
    made = []

    def build(**overrides):
        pipeline = pipeline_factory(**overrides)
        pipeline.start("worker", "--concurrency", "4")
        pipeline.start("scheduler")
        made.append(Dashboard(pipeline, browser))
        return made[-1]
    yield build
    for board in made:
        board.close()


def test_a_failing_receivers_delivery_goes_dead_and_is_replayed_from_the_dead_letter_page(dashboard, peer):
    board = dashboard(max_attempts=2)
    pipeline = board.pipeline
    crm = {"up": False}
    peer.routes["/crm"] = lambda recorded: (
        (200, {}, {"message": "ok", "description": "stored"}) if crm["up"]
        else (503, {}, {"message": "Service unavailable", "description": "CRM maintenance until 16:00"}))
    peer.routes["/erp"] = scripted()
    pipeline.tenant.create_group({"name": "Box office CRM", "description": "Orders into the CRM and the ERP",
                                  "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")},
                                            {"type": "order_created", "endpoint": peer.url("/erp")}]})
    for n in (1, 2, 3):
        pipeline.emit("order_created", order(n))
    pipeline.wait_until(lambda: sorted(d.status for d in pipeline.deliveries()) == ["dead"] * 3 + ["delivered"] * 3,
                        what="three dead at the CRM, three delivered to the ERP")

    board.open("/dashboard/")
    assert "/dashboard/login" in board.driver.current_url  # no session: the login page
    board.shot("login")
    board.login(pipeline.tenant)
    text = board.text()
    assert "Box office CRM" in text and peer.url("/crm") in text and "0.0 %" in text and "100.0 %" in text
    board.shot("groups")

    board.open("/dashboard/deliveries")
    assert len(board.driver.find_elements(By.CSS_SELECTOR, "tr.delivery")) == 6
    board.shot("deliveries")
    board.open("/dashboard/deliveries?status=dead")
    rows = board.driver.find_elements(By.CSS_SELECTOR, "tr.delivery")
    assert len(rows) == 3
    rows[0].find_element(By.TAG_NAME, "a").click()
    board.wait_for(lambda d: "Attempts" in self_text(d))
    text = board.text()
    assert "CRM maintenance until 16:00" in text and "HTTP 503" in text and "webhook-id" in text
    board.shot("delivery")

    board.open("/dashboard/dead-letters")
    dead = board.driver.find_elements(By.CSS_SELECTOR, "tr.dead-letter")
    assert len(dead) == 3
    board.shot("dead-letters")
    crm["up"] = True
    dead[0].find_element(By.CSS_SELECTOR, "button.replay-one").click()
    board.wait_for(lambda d: "1 dead letter(s) replayed" in self_text(d))
    pipeline.wait_until(lambda: sorted(d.status for d in pipeline.deliveries()) == ["dead"] * 2 + ["delivered"] * 4,
                        what="the replayed one delivered")
    board.open("/dashboard/dead-letters")
    board.click(By.ID, "replay-all")
    board.wait_for(lambda d: "2 dead letter(s) replayed" in self_text(d))
    pipeline.wait_until(lambda: {d.status for d in pipeline.deliveries()} == {"delivered"}, what="all delivered")
    board.reload_until("/dashboard/dead-letters", lambda t: "No dead letters match" in t, "an empty dead-letter page")
    # two attempts each, then the replays (a lease lost on a loaded machine may add a duplicate)
    assert len({r.headers["webhook-id"] for r in peer.at("/crm")}) == 3 and len(peer.at("/crm")) >= 2 * 3 + 3

    # the group's timeline: its deliveries by the hour they were created, by status now;
    # three days of history are written into the ledger (the pipeline would take three days)
    write_history(pipeline)
    board.open("/dashboard/")
    board.click(By.LINK_TEXT, "Timeline")
    board.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline svg rect"))
    assert "delivered" in board.driver.find_element(By.ID, "totals").text
    board.shot("timeline")

    board.open("/dashboard/initialization")
    board.driver.find_element(By.CSS_SELECTOR, "#i-resource option[value=orders]").click()
    board.driver.find_element(By.ID, "i-event").send_keys("7")
    board.click(By.ID, "init-start")
    board.wait_for(lambda d: "Started: 3 item(s), 6 deliveries queued" in self_text(d))
    assert "0 / 6" in board.driver.find_element(By.ID, "progress").text or "/ 6" in board.text()
    board.shot("initialization")


def write_history(pipeline, hours=72):
    """Copies of a delivered row over the last ``hours`` (busier in the day), some failed or
    dead; ordering keys of their own and retries a day ahead, so no worker touches them."""
    with pipeline.engine.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO deliveries (id, trigger_pk, hook_id, group_id, organization_id, type, endpoint, entity_kind,
                entity_id, ordering_key, sequence, status, attempts, attempt_base, source, next_attempt_at,
                created_at, updated_at)
            SELECT md5(random()::text || h || ':' || j)::uuid::text, d.trigger_pk, d.hook_id, d.group_id,
                d.organization_id, d.type, d.endpoint, d.entity_kind, d.entity_id, 'history:' || h || ':' || j,
                h * 100 + j, CASE WHEN (h * 7 + j) % 29 = 0 THEN 'dead' WHEN (h + j) % 9 = 0 THEN 'retrying'
                                  ELSE 'delivered' END,
                1, 0, 'trigger', (now() at time zone 'utc') + interval '1 day', created, created
            FROM generate_series(1, :hours) h,
                 LATERAL generate_series(1, 2 + round(10 * (1 + sin(h * pi() / 12)))::int) j,
                 LATERAL (SELECT (now() at time zone 'utc') - make_interval(hours => h, mins => j) AS created) t,
                 (SELECT * FROM deliveries WHERE status = 'delivered' LIMIT 1) d
        """), {"hours": hours})


def self_text(driver):
    return driver.find_element(By.TAG_NAME, "body").text


def test_a_410_disabled_hook_is_enabled_with_its_button(dashboard, peer):
    board = dashboard()
    pipeline = board.pipeline
    gone = {"yes": True}
    peer.routes["/old-crm"] = lambda recorded: (
        (410, {}, {"message": "Gone", "description": "this endpoint moved"}) if gone["yes"]
        else (200, {}, {"message": "ok", "description": ""}))
    pipeline.tenant.create_group({"name": "Old CRM", "hooks": [{"type": "order_created",
                                                                 "endpoint": peer.url("/old-crm")}]})
    pipeline.emit("order_created", order(1))
    pipeline.wait_until(lambda: [(d.status, d.last_status_code) for d in pipeline.deliveries()] == [("retrying", 410)],
                        what="the 410 recorded and the hook disabled")
    board.login(pipeline.tenant)
    board.reload_until("/dashboard/", lambda t: "the receiver answered 410 Gone" in t, "the hook shown disabled")
    assert "1 waiting" in board.text()
    board.shot("groups-disabled-hook")
    gone["yes"] = False
    board.click(By.CSS_SELECTOR, "button.enable")
    board.wait_for(lambda d: "waiting deliveries go out now" in self_text(d))
    assert not board.driver.find_elements(By.CSS_SELECTOR, "button.enable")
    pipeline.wait_until(lambda: [d.status for d in pipeline.deliveries()] == ["delivered"], what="the owed one sent")
    assert {r.json()["order_details"]["id"] for r in peer.at("/old-crm")} == {1} and len(peer.at("/old-crm")) >= 2


def test_a_viewer_cannot_change_a_second_tenant_sees_nothing_csrf_and_logout(dashboard, peer):
    board = dashboard(max_attempts=1)
    pipeline = board.pipeline
    peer.routes["/crm"] = scripted(then=500)
    group_id = pipeline.tenant.create_group({"name": "Box office CRM", "hooks": [
        {"type": "order_created", "endpoint": peer.url("/crm")}]})
    pipeline.emit("order_created", order(1))
    pipeline.wait_until(lambda: [d.status for d in pipeline.deliveries()] == ["dead"], what="a dead letter")
    (dead,) = [d.id for d in pipeline.deliveries()]

    # a viewer of the same organization sees everything, and no change button
    viewer = new_tenant(pipeline.app, pipeline.client, role="team_viewer", organization_id=pipeline.tenant.organization_id)
    board.login(viewer)
    assert "Box office CRM" in board.text() and "team_viewer" in board.text()
    board.open("/dashboard/dead-letters")
    assert len(board.driver.find_elements(By.CSS_SELECTOR, "tr.dead-letter")) == 1
    assert not board.driver.find_elements(By.CSS_SELECTOR, "button.replay-one, #replay-all, #replay-selected")
    board.shot("viewer-dead-letters")
    board.open(f"/dashboard/deliveries/{dead}")
    assert "HTTP 500" in board.text() and not board.driver.find_elements(By.ID, "redeliver")
    board.open("/dashboard/initialization")
    assert not board.driver.find_elements(By.ID, "init-start")

    # a form sent without its CSRF token is refused (the viewer's logout form, token removed)
    board.driver.execute_script("document.querySelector('#logout').form.querySelector('[name=csrf_token]').remove()")
    board.click(By.ID, "logout")
    board.wait_for(lambda d: "403" in self_text(d))
    assert "CSRF token is missing" in board.text()
    board.shot("csrf-refused")

    # logout ends the session: the pages send back to the login page
    board.open("/dashboard/")
    board.click(By.ID, "logout")
    board.wait_for(lambda d: "/dashboard/login" in d.current_url)
    board.open("/dashboard/dead-letters")
    assert "/dashboard/login" in board.driver.current_url

    # a second tenant sees none of the first one's data on any page, and its ids are 404
    other = new_tenant(pipeline.app, pipeline.client)
    board.login(other)
    for path in ("/dashboard/", "/dashboard/deliveries", "/dashboard/dead-letters", "/dashboard/initialization"):
        board.open(path)
        text = board.driver.page_source
        assert "Box office CRM" not in text and dead not in text and group_id not in text, path
    board.open("/dashboard/dead-letters")
    board.shot("second-tenant-dead-letters")
    for path in (f"/dashboard/deliveries/{dead}", f"/dashboard/groups/{group_id}/timeline"):
        board.open(path)
        assert "404" in board.text(), path
    board.shot("second-tenant-404")
