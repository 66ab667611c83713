"""The staff portal in a real browser: Debian's headless Chromium driven by Playwright.

An agent logs in (Chinese by default), sees the post-visit call due today with its script,
reveals the phone (audited by the gateway), and records "reached, satisfaction 5" in one
click; the manager's dashboard, open since before the call, shows the figures change. The
language is switched to English once; an error is shown wholly in the page's language.
Screenshots of every step go to artifacts/portal/; with HCRM_README_SHOTS=1, the ones the
README's "First hour" shows are also written to docs/img/.
Nothing sleeps and hopes: every wait is a condition with a deadline.
"""

import base64
import datetime
import http.client
import os
import re
import urllib.parse
import zoneinfo

import pytest

from tests import factories
from tests.support import REPO, wait_until

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "artifacts" / "portal"
README_SHOTS = REPO / "docs" / "img"  # only with HCRM_README_SHOTS=1
README_SHOT_NAMES = {
    "01-manager-dashboard-before",
    "03-worklist",
    "05-call-recorded",
    "09-manager-dashboard-after",
}
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")
HOSPITAL_TZ = zoneinfo.ZoneInfo("Asia/Shanghai")  # the platform's default time zone
AGENT = ("li.na", "agent-password-1")
MANAGER = ("zhao.lei", "manager-password-1")
PATIENT = {"mrn": "PORTAL-001", "name": "王芳", "phone": "13912345678"}
UI_TIMEOUT_MS = 20_000


def raw_get(platform, path):
    """(status, headers, body) without following redirects."""
    url = urllib.parse.urlsplit(platform.gateway_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def today():
    return datetime.datetime.now(HOSPITAL_TZ).date()


def visit_yesterday():
    """A visit yesterday (hospital time): its post-visit call is due at the end of today."""
    visited = datetime.datetime.combine(
        today() - datetime.timedelta(days=1), datetime.time(9, 30), HOSPITAL_TZ
    )
    event = factories.visit(PATIENT["mrn"], name=PATIENT["name"], phone=PATIENT["phone"])
    event["data"]["visited_at"] = visited.isoformat()
    event["occurred_at"] = (visited + datetime.timedelta(minutes=40)).isoformat()
    return event


def next_working_morning():
    """09:00 on the next Monday-Friday after today (hospital time): inside the default hours."""
    day = today() + datetime.timedelta(days=1)
    while day.weekday() > 4:
        day += datetime.timedelta(days=1)
    return datetime.datetime.combine(day, datetime.time(9, 0), HOSPITAL_TZ)


def dashboard_range():
    return (today() - datetime.timedelta(days=29)).isoformat(), today().isoformat()


def summary(platform, token):
    start, end = dashboard_range()
    status, body = platform.http(
        "GET", f"/api/v1/analytics/summary?from={start}&to={end}", token=token
    )
    assert status == 200, body
    return body


@pytest.fixture
def portal(platform):
    for service in ("intake", "followup", "appointments", "analytics"):
        platform.start_service(service)
    platform.start_service(
        "complaints", COMPLAINTS_SLA_CHECK_INTERVAL_S="1"
    )  # breaches seen quickly
    platform.start_gateway()
    admin = platform.token()
    for (username, password), role in ((AGENT, "agent"), (MANAGER, "manager")):
        status, body = platform.http(
            "POST",
            "/api/v1/users",
            {"username": username, "password": password, "role": role},
            token=admin,
        )
        assert status == 201, body
    return platform


@pytest.fixture
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


class Tab:
    """A browser context (its own sessionStorage) with one page, its console errors kept."""

    def __init__(self, browser, base_url, label):
        self.context = browser.new_context(
            base_url=base_url,
            viewport={"width": 1280, "height": 900},
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(UI_TIMEOUT_MS)
        self.label = label
        self.errors = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def shot(self, name):
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        if os.environ.get("HCRM_README_SHOTS") and name in README_SHOT_NAMES:
            README_SHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(README_SHOTS / f"{name}.png"))  # the viewport: small

    def login(self, username, password):
        page = self.page
        page.goto("/")  # the gateway redirects / to /portal/
        expect(page.locator("#login-form")).to_be_visible()
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("#login-submit")
        expect(page.locator("#logout")).to_be_visible()

    def figure(self, key):
        return self.page.locator(f'[data-figure="{key}"] .figure-value')

    def close(self):
        self.context.close()


def reload_dashboard(tab):
    """Click refresh and wait until the page has drawn the new answer."""
    page = tab.page
    before = page.locator("#view").get_attribute("data-loaded-at")
    page.click("#dash-refresh")
    page.wait_for_function(
        "before => document.querySelector('#view').dataset.loadedAt !== before", arg=before
    )


def test_agent_call_then_manager_sees_it_on_the_dashboard(portal, browser):
    platform = portal
    admin = platform.token()
    agent_token = platform.token(*AGENT)
    manager_token = platform.token(*MANAGER)

    # Yesterday's visit: a post-visit call due today; and two complaints for the queue.
    platform.publish(visit_yesterday())
    task = wait_until(
        lambda: next(
            iter(
                platform.http(
                    "GET", "/api/v1/followups?status=pending&due_today=true", token=agent_token
                )[1]["items"]
            ),
            None,
        ),
        timeout=60,
        message="the post-visit call due today",
    )
    assert task["kind"] == "post_visit_call" and task["patient_name"] == PATIENT["name"]
    wait_until(
        lambda: summary(platform, manager_token)["followups_due"] == 1,
        timeout=60,
        message="analytics to count the call as due",
    )
    late = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=3)).isoformat()
    for body in (
        {
            "channel": "phone",
            "category": "waiting_time",
            "severity": "high",
            "description": "候诊超过两小时，无人解释。",
            "received_at": late,
        },
        {
            "channel": "wechat",
            "category": "attitude",
            "severity": "medium",
            "description": "<b>挂号处</b>态度冷淡 <script>alert(1)</script>",
        },
    ):
        status, created = platform.http("POST", "/api/v1/complaints", body, token=agent_token)
        assert status == 201, created
    # The late one is past its 2-hour acknowledge deadline: the SLA timer escalates it.
    wait_until(
        lambda: (
            platform.http("GET", "/api/v1/complaints?status=escalated", token=agent_token)[1][
                "total"
            ]
            == 1
        ),
        timeout=30,
        message="the breached complaint to be escalated",
    )

    starts = next_working_morning()
    status, booked = platform.http(
        "POST",
        "/api/v1/appointments",
        {
            "patient_id": task["patient_id"],
            "department": "心内科",
            "doctor_id": "DR-LIU",
            "starts_at": starts.isoformat(),
            "channel": "phone",
        },
        token=agent_token,
    )
    assert status == 201, booked

    manager = Tab(browser, platform.gateway_url, "manager")
    agent = Tab(browser, platform.gateway_url, "agent")
    try:
        # -- the manager's dashboard before the call -------------------------------------
        manager.login(*MANAGER)
        page = manager.page
        expect(page.locator("#view h1")).to_have_text("管理看板")  # Chinese by default
        expect(manager.figure("followups_due")).to_have_text("1")
        expect(manager.figure("followups_completed")).to_have_text("0")
        expect(manager.figure("avg_satisfaction")).to_have_text("—")
        expect(page.locator("#chart-trend svg path").first).to_be_attached()
        manager.shot("01-manager-dashboard-before")

        # -- the agent: login page, worklist ----------------------------------------------
        page = agent.page
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/portal/#/login$"))
        expect(page.locator("#login-form h1")).to_have_text("员工登录")
        agent.shot("02-login-zh")
        agent.login(*AGENT)
        assert page.evaluate("sessionStorage.getItem('hcrm.token')")
        assert not page.evaluate("localStorage.getItem('hcrm.token')")
        card = page.locator(f'article.task[data-followup-id="{task["followup_id"]}"]')
        expect(card).to_be_visible()
        expect(card.locator(".patient-name")).to_have_text(PATIENT["name"])
        expect(card.locator(".why-kind")).to_have_text("门诊后回访")
        expect(card.locator(".script")).to_contain_text("您昨天来院就诊")
        assert PATIENT["phone"] not in page.content()  # not shown until asked for
        agent.shot("03-worklist")

        # -- show phone: shown, and audited by the gateway --------------------------------
        card.locator("button.show-phone").click()
        expect(card.locator(".phone")).to_have_text(PATIENT["phone"])
        agent.shot("04-phone-revealed")
        audit = wait_until(
            lambda: [
                e
                for e in platform.http(
                    "GET", f"/api/v1/audit?patient_id={task['patient_id']}", token=admin
                )[1]["items"]
                if e["route"] == f"/api/v1/followups/{task['followup_id']}/contact"
            ],
            timeout=10,
            message="the audit entry of the phone reveal",
        )
        assert audit[0]["user"] == AGENT[0] and audit[0]["status"] == 200

        # -- reached, satisfaction 5: one click --------------------------------------------
        card.locator('button[data-outcome="reached"][data-satisfaction="5"]').click()
        expect(card.locator(".result")).to_have_text("已记录：已接通 · 满意度 5")
        agent.shot("05-call-recorded")
        status, done = platform.http("GET", f"/api/v1/followups/{task['followup_id']}", token=admin)
        assert (done["status"], done["outcome"], done["satisfaction"], done["completed_by"]) == (
            "done",
            "reached",
            5,
            AGENT[0],
        )

        # -- appointments of a day: confirm, then check in ---------------------------------
        page.click("#nav-appointments")
        page.fill("#appt-date", starts.date().isoformat())
        page.click("#appt-show")
        row = page.locator(f'tr[data-appointment-id="{booked["appointment_id"]}"]')
        expect(row).to_have_attribute("data-status", "booked")
        expect(row.locator("td").nth(1)).to_have_text(PATIENT["name"])
        row.locator("button.confirm").click()
        expect(row).to_have_attribute("data-status", "confirmed")
        row.locator("button.check-in").click()
        expect(row).to_have_attribute("data-status", "checked_in")
        expect(row).to_contain_text("已签到")
        agent.shot("06-appointments")

        # -- complaints: live countdown, red when breached; no escalate for an agent -------
        page.click("#nav-complaints")
        page.select_option("#complaint-status", "all")
        expect(page.locator("article.complaint")).to_have_count(2)
        expect(page.locator(".countdown.breached")).to_have_count(1)
        expect(page.locator(".countdown.breached")).to_contain_text("已超时")
        expect(page.locator(".countdown:not(.breached)")).to_contain_text("剩余")
        expect(page.locator("button.escalate")).to_have_count(0)
        expect(page.locator("article.complaint .description", has_text="alert(1)")).to_have_text(
            "<b>挂号处</b>态度冷淡 <script>alert(1)</script>"
        )
        assert page.locator("article.complaint b").count() == 0  # text, never markup
        expect(page.locator("#complaint-list")).not_to_contain_text("null")
        agent.shot("07-complaints-agent")

        # -- patient search and timeline ----------------------------------------------------
        page.click("#nav-patients")
        page.select_option("#patient-by", "mrn")
        page.fill("#patient-query", PATIENT["mrn"])
        page.click("#patient-submit")
        page.locator("a.open-timeline").first.click()
        expect(page.locator("#patient-profile h1")).to_have_text(PATIENT["name"])
        expect(page.locator('#timeline li[data-event-type="PatientVisited"]')).to_contain_text(
            "门诊就诊"
        )
        agent.shot("08-patient-timeline")

        # -- the manager's figures change ---------------------------------------------------
        page = manager.page

        def dashboard_shows_the_call():
            reload_dashboard(manager)
            return (
                manager.figure("followups_completed").inner_text() == "1"
                and manager.figure("avg_satisfaction").inner_text() == "5.00"
            )

        wait_until(
            dashboard_shows_the_call,
            timeout=60,
            interval=0.5,
            message="the dashboard to show the completed call and its score",
        )
        expect(manager.figure("followup_completion_rate")).to_have_text("100.0%")
        expect(page.locator("#chart-satisfaction circle")).not_to_have_count(0)
        manager.shot("09-manager-dashboard-after")

        # -- English, once; the choice is remembered ---------------------------------------
        page.click("#lang-toggle")
        expect(page.locator("#view h1")).to_have_text("Manager's dashboard")
        expect(page.locator('[data-figure="followups_completed"] .figure-label')).to_have_text(
            "Follow-ups completed"
        )
        assert page.evaluate("localStorage.getItem('hcrm.lang')") == "en"
        page.reload()
        expect(page.locator("#nav-worklist")).to_have_text("Today's calls")
        expect(manager.figure("followups_completed")).to_have_text("1")
        page.click("#weekly-view")
        expect(page.locator("#weekly-output")).to_contain_text("received")
        manager.shot("10-manager-dashboard-en")

        # The monthly leadership report, fetched with the token, shown from a blob: URL in a
        # new tab, its inline CSS handed over through the CSSOM (the portal's CSP refuses it).
        page.select_option("#report-format", "html")
        with manager.context.expect_page() as popup_info:
            page.click("#monthly-open")
        popup = popup_info.value
        expect(page.locator("#monthly-output a.report-open")).to_have_attribute(
            "href", re.compile(r"^blob:")
        )
        popup.wait_for_function(
            "location.protocol === 'blob:' && document.adoptedStyleSheets.length > 0"
        )
        expect(popup.locator("h1")).to_be_visible()
        popup.screenshot(path=str(SHOTS / "11-monthly-report.png"), full_page=True)
        popup.close()

        # The manager may escalate; the agent could not.
        page.click("#nav-complaints")
        page.select_option("#complaint-status", "all")
        expect(page.locator("button.escalate")).to_have_count(1)
        expect(page.locator("button.escalate")).to_have_text("Escalate")
        manager.shot("12-complaints-manager-en")

        # No script error, no CSP violation, no failed request so far.
        assert agent.errors == [] and manager.errors == [], (agent.errors, manager.errors)

        # -- a token the gateway refuses (401) sends back to the login page -----------------
        page = agent.page
        forged = (
            agent_token.rsplit(".", 1)[0]
            + "."
            + base64.urlsafe_b64encode(b"x" * 32).decode().rstrip("=")
        )
        page.evaluate("token => sessionStorage.setItem('hcrm.token', token)", forged)
        page.click("#nav-worklist")
        expect(page.locator("#login-form")).to_be_visible()
        expect(page.locator("#notice")).to_contain_text("登录已失效")
        assert page.evaluate("sessionStorage.getItem('hcrm.token')") is None
        agent.shot("13-back-to-login-after-401")

        # -- an error wholly in the page's language: no English in Chinese, and vice versa --
        for lang, expected, foreign in (
            ("zh", "用户名或密码错误", LATIN_WORD),
            ("en", "Wrong username or password.", CJK),
        ):
            if lang == "en":
                page.click("#lang-toggle")
                expect(page.locator("#login-form h1")).to_have_text("Staff sign-in")
            page.fill("#username", AGENT[0])
            page.fill("#password", "not-the-password")
            page.click("#login-submit")
            expect(page.locator("#notice")).to_contain_text(expected)
            expect(page.locator("#notice")).to_have_attribute("data-error-code", "unauthorized")
            text = page.locator("#notice").inner_text()
            assert not foreign.search(text), (lang, text)
            agent.shot(f"14-login-error-{lang}")
        assert all("401" in error for error in agent.errors), agent.errors
    finally:
        agent.close()
        manager.close()


def test_static_files_are_served_safely(platform):
    platform.start_gateway()
    status, headers, _ = raw_get(platform, "/")
    assert status == 302 and headers["location"].endswith("/portal/")
    status, headers, body = raw_get(platform, "/portal/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in headers["content-security-policy"]
    assert b'<script src="app.js"' in body and b"://" not in body  # nothing from elsewhere
    for name, content_type in (
        ("app.js", "text/javascript"),
        ("styles.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ):
        status, headers, _ = raw_get(platform, f"/portal/{name}")
        assert status == 200 and headers["content-type"].startswith(content_type), (name, headers)
        assert "default-src 'self'" in headers["content-security-policy"]
    for path in (
        "/portal/../services/gateway/app.py",
        "/portal/%2e%2e/routes/portal.py",
        "/portal/..%2froutes%2fportal.py",
        "/portal/%2e%2e%2f%2e%2e%2fapp.py",
        "/portal/.hidden",
        "/portal/nope.js",
        "/portal/..\\app.py",
        "/portal/%00app.js",
    ):
        status, _, body = raw_get(platform, path)
        assert status in (400, 404), (path, status)
        assert b"import" not in body and b"def " not in body, path
    # The data routes stay protected.
    status, body = platform.http("GET", "/api/v1/followups")
    assert status == 401 and body["error"]["code"] == "unauthorized"
