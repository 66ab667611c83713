"""The manager's campaigns page in a real browser (issue 22 point 3): a campaign created from
the form reaches the consenting patients only and its report shows it, in Chinese and in
English; a holiday greeting takes its date from the calendar; a call campaign's task shows in
the agent's worklist with the campaign's text; an agent has no campaigns page.

Fixtures and the browser helpers come from test_portal_browser.py. Screenshots go to
artifacts/portal/campaign-*.png. Nothing sleeps and hopes: every wait has a deadline.
"""

import datetime

import pymongo
import pytest

from tests import factories
from tests.e2e.test_portal_browser import AGENT, HOSPITAL_TZ, MANAGER, Tab, browser, expect  # noqa: F401
from tests.support import wait_until

pytestmark = pytest.mark.e2e

PEOPLE = (
    ("CAMP-E2E-1", "张伟", "13900000101", "心内科", True),
    ("CAMP-E2E-2", "李娜", "13900000102", "心内科", True),
    ("CAMP-E2E-3", "王强", "13900000103", "心内科", False),
    ("CAMP-E2E-4", "刘洋", "13900000104", "骨科", True),
)


@pytest.fixture
def outreach(platform):
    platform.start_service("intake")
    platform.start_service("followup")
    # No quiet hours here: the test runs at any hour (tests/unit covers them).
    platform.start_service(
        "campaigns",
        CAMPAIGNS_TIMER_INTERVAL_S="0.3",
        CAMPAIGNS_QUIET_START="00:00",
        CAMPAIGNS_QUIET_END="00:00",
    )
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
    for mrn, name, phone, department, consent in PEOPLE:
        platform.publish(
            factories.visit(
                mrn, department=department, name=name, phone=phone, marketing_consent=consent
            )
        )
    db = pymongo.MongoClient(platform.database_uri("campaigns")).get_default_database()
    try:
        wait_until(
            lambda: db.people.count_documents({}) == len(PEOPLE),
            timeout=60,
            message="campaigns knows them",
        )
    finally:
        db.client.close()
    return platform


def done(page):
    """Refresh the page until the report shown says done."""

    def check():
        before = page.locator("#view").get_attribute("data-loaded-at")
        page.click("#camp-refresh")
        page.wait_for_function(
            "before => document.querySelector('#view').dataset.loadedAt !== before", arg=before
        )
        return page.locator("#camp-report-status").text_content() == "已完成"

    wait_until(check, timeout=30, interval=0.3, message="the campaign done")


def test_the_campaigns_page(outreach, browser):  # `browser`: the imported fixture
    platform = outreach
    manager = Tab(browser, platform.gateway_url, "manager")
    agent = Tab(browser, platform.gateway_url, "agent")
    now = datetime.datetime.now(HOSPITAL_TZ)
    try:
        manager.login(*MANAGER)
        page = manager.page
        page.click("#nav-campaigns")
        expect(page.locator("#view h1")).to_have_text("关怀与营销活动")
        expect(page.locator("#camp-rows")).to_contain_text("还没有活动。")
        expect(page.locator("#camp-consent-note")).to_contain_text(
            "00:00–00:00 不发送，每人每天最多 1 条"
        )
        # A manager lands on the dashboard, whose figures come from analytics, not started here.
        assert all("503" in error for error in manager.errors), manager.errors
        manager.errors.clear()

        # -- an SMS campaign to 心内科, now ------------------------------------------------------
        page.fill("#camp-name", "心内科义诊周")
        page.fill("#camp-send-at", now.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#camp-department", "心内科")
        page.fill("#camp-visits-min", "1")
        page.fill("#camp-template-zh", "{name}您好，心内科义诊周欢迎您。回TD退订")
        page.fill("#camp-template-en", "Dear {name}, welcome to our heart clinic week.")
        manager.shot("campaign-01-form-zh")
        page.click("#camp-create")
        expect(page.locator("#notice")).to_contain_text("活动已创建：心内科义诊周")
        expect(page.locator("#camp-report h2")).to_have_text(
            "活动效果：心内科义诊周"
        )  # shown at once
        done(page)
        row = page.locator("#camp-rows tr").first
        expect(manager.figure("targeted")).to_have_text("3")
        expect(manager.figure("excluded_no_consent")).to_have_text("1")
        expect(manager.figure("sent")).to_have_text("2")
        expect(row.locator("td").nth(1)).to_have_text("短信")
        manager.shot("campaign-02-report-zh")

        # -- a holiday greeting: the date comes from the calendar -------------------------------
        page.select_option("#camp-when", "holiday")
        expect(page.locator("#camp-holiday")).to_be_visible()
        page.select_option("#camp-holiday", "spring_festival")
        page.fill("#camp-name", "春节问候")
        page.fill("#camp-department", "")
        page.fill("#camp-visits-min", "")
        page.fill("#camp-template-zh", "{name}您好，祝您春节快乐、身体健康！")
        page.fill("#camp-template-en", "Happy Spring Festival, {name}!")
        page.click("#camp-create")
        expect(page.locator("#notice")).to_contain_text("春节问候")
        expect(page.locator("#camp-report-status")).to_have_text("待发送")
        expect(page.locator("#camp-rows tr")).to_have_count(2)
        expect(page.locator("#camp-rows")).to_contain_text("春节")
        manager.shot("campaign-03-holiday-zh")

        # -- a call campaign to 骨科: a task in the agents' worklist ------------------------------
        page.select_option("#camp-when", "at")
        page.fill("#camp-name", "骨科康复关怀")
        page.select_option("#camp-channel", "call")
        page.fill("#camp-send-at", now.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#camp-department", "骨科")
        page.fill("#camp-template-zh", "您好，骨科康复讲座下周三下午举行，欢迎参加。")
        page.fill("#camp-template-en", "Our orthopaedic recovery talk is next Wednesday afternoon.")
        page.click("#camp-create")
        expect(page.locator("#camp-report h2")).to_have_text("活动效果：骨科康复关怀")
        done(page)
        expect(manager.figure("calls_created")).to_have_text("1")

        # -- English ------------------------------------------------------------------------------
        page.click("#lang-toggle")
        expect(page.locator("#view h1")).to_have_text("Outreach campaigns")
        page.locator('#camp-rows tr:has-text("心内科义诊周") .camp-show').click()
        expect(page.locator("#camp-report h2")).to_have_text("Report: 心内科义诊周")
        expect(page.locator('[data-figure="sent"] .figure-label')).to_have_text("SMS sent")
        expect(manager.figure("sent")).to_have_text("2")
        manager.shot("campaign-04-report-en")

        # -- the agent: the call in the worklist, with the campaign's text; no campaigns page -----
        agent.login(*AGENT)
        page = agent.page
        expect(page.locator("#nav-campaigns")).to_have_count(0)
        page.click("#tab-pending")
        card = page.locator('article.task:has-text("活动回访")')
        expect(card).to_have_count(1)
        expect(card.locator(".script")).to_have_text("您好，骨科康复讲座下周三下午举行，欢迎参加。")
        expect(card.locator(".patient-name")).to_have_text("刘洋")
        agent.shot("campaign-05-call-task-zh")
        assert manager.errors == [] and agent.errors == [], (manager.errors, agent.errors)
    finally:
        manager.close()
        agent.close()
