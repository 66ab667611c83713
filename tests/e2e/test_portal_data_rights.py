"""Patients' data rights in the staff portal (issue 18), as each role sees them:

1. the manager opens a patient and sees "导出个人数据" (export); the export opens as a readable
   page in a new tab (fetched with the token, shown from a blob: URL); there is no erase button;
2. the agent sees neither;
3. the admin erases the person with a reason: the page then shows the record without a name
   and says when it was erased; the gateway's record has no name and no phone any more.

Screenshots of every step go to artifacts/portal/dpr-*.png. Nothing sleeps and hopes: each
wait is a condition with a deadline (wait_until, or Playwright's expect).
"""

import re

import pytest

from tests import factories
from tests.e2e.test_portal_browser import AGENT, MANAGER, SHOTS, Tab, browser, expect, portal  # noqa: F401 (fixtures)
from tests.support import ADMIN, wait_until

pytestmark = pytest.mark.e2e

PERSON = {"mrn": "DPR-001", "name": "上官婉儿", "phone": "13911112222"}


def test_manager_exports_agent_does_not_admin_erases(portal, browser):
    platform = portal
    admin_token = platform.token()
    platform.publish(
        factories.visit(
            PERSON["mrn"],
            name=PERSON["name"],
            phone=PERSON["phone"],
            region="海淀区",
            birth_date="1990-02-03",
        )
    )
    patient = wait_until(
        lambda: next(
            iter(
                platform.http("GET", f"/api/v1/patients?mrn={PERSON['mrn']}", token=admin_token)[1][
                    "items"
                ]
            ),
            None,
        ),
        timeout=60,
        message="the patient's record",
    )
    view = f"/portal/#/patient/{patient['patient_id']}"

    manager = Tab(browser, platform.gateway_url, "manager")
    agent = Tab(browser, platform.gateway_url, "agent")
    admin = Tab(browser, platform.gateway_url, "admin")
    try:
        # -- the manager: export, no erasure -------------------------------------------------
        manager.login(*MANAGER)
        page = manager.page
        page.goto(view)
        expect(page.locator("#patient-profile h1")).to_have_text(PERSON["name"])
        expect(page.locator("#patient-export")).to_have_text("导出个人数据")
        expect(page.locator("#patient-erase")).to_have_count(0)
        manager.shot("dpr-01-manager-patient")
        with manager.context.expect_page() as popup_info:
            page.click("#patient-export")
        popup = popup_info.value
        expect(page.locator("#export-output a.report-open")).to_have_attribute(
            "href", re.compile(r"^blob:")
        )
        popup.wait_for_function(
            "location.protocol === 'blob:' && document.adoptedStyleSheets.length > 0"
        )
        expect(popup.locator("h1")).to_contain_text(PERSON["name"])
        expect(popup.locator("body")).to_contain_text(PERSON["mrn"])
        expect(popup.locator("h2", has_text="Follow-ups")).to_be_visible()
        popup.screenshot(path=str(SHOTS / "dpr-02-export-page.png"), full_page=True)
        popup.close()

        # -- the agent: neither ---------------------------------------------------------------
        agent.login(*AGENT)
        page = agent.page
        page.goto(view)
        expect(page.locator("#patient-profile h1")).to_have_text(PERSON["name"])
        expect(page.locator("#data-rights")).to_have_count(0)
        expect(page.locator("#patient-export")).to_have_count(0)
        agent.shot("dpr-03-agent-patient")

        # -- the admin: erase with a reason ---------------------------------------------------
        admin.login(*ADMIN)
        page = admin.page
        page.goto(view)
        expect(page.locator("#patient-export")).to_be_visible()
        page.click("#patient-erase")
        expect(page.locator("#erase-form")).to_be_visible()
        expect(page.locator("#erase-form")).to_contain_text("不可撤销")
        page.fill("#erase-reason", "个人信息删除申请 DPO-2026-031")
        admin.shot("dpr-04-erase-reason")
        page.click("#erase-confirm")
        expect(page.locator("#notice")).to_contain_text("已提交删除")
        expect(page.locator("#patient-erased")).to_contain_text("个人信息已于")
        expect(page.locator("#patient-profile h1")).to_have_text("—")
        expect(page.locator("#patient-erase")).to_have_count(0)
        expect(page.locator('#timeline li[data-event-type="PatientErased"]')).to_have_count(1)
        assert PERSON["name"] not in page.content() and PERSON["phone"] not in page.content()
        admin.shot("dpr-05-erased")

        status, record = platform.http(
            "GET", f"/api/v1/patients/{patient['patient_id']}", token=admin_token
        )
        assert (
            status == 200
            and record["name"] is None
            and record["phone"] is None
            and record["erased_at"]
        )
        _, audit = platform.http(
            "GET", f"/api/v1/audit?patient_id={patient['patient_id']}", token=admin_token
        )
        erasure = next(e for e in audit["items"] if e["route"].endswith("/erase"))
        assert erasure["user"] == ADMIN[0] and erasure["reason"] == "个人信息删除申请 DPO-2026-031"
        assert manager.errors == [] and agent.errors == [] and admin.errors == [], (
            manager.errors,
            agent.errors,
            admin.errors,
        )
    finally:
        for tab in (manager, agent, admin):
            tab.close()
