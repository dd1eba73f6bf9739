"""A person edits a synced deal in the sandbox's web page with a real (headless) Chromium, and the
next pass of the code location carries the edit into PostgreSQL, deciding its conflict with the
agent's own change by rule and reporting it in the run's metadata.

The browser is Debian's `chromium`, driven through its own `chromedriver` (both named explicitly,
so Selenium Manager never downloads anything); `scripts/ensure-chromium` installs them as root.
Without them the test is skipped, saying why, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from crm_pipeline.models import OpportunityCreate, OpportunityUpdate
from crm_pipeline.sandbox import RunningSandbox, ui_url
from crm_pipeline.store import DealRepository
from crm_pipeline_tests.defs.conftest import TenantWorld, check_results, metadata, sync_tenant

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HEADLESS_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")
WAIT_SECONDS = 30  # only how long a genuine failure takes to report; nothing waits for the clock
MAYA = {"name": "Maya Lindqvist", "email": "maya@sales.example"}


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        reason = (
            f"the browser test needs Debian's chromium and chromium-driver; missing: {', '.join(missing)} "
            "(scripts/ensure-chromium installs them as root)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in HEADLESS_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def cell(browser: WebDriver, page_id: str, prop: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, f'tr[id="{page_id}"] td[data-property="{prop}"]')


def shows(browser: WebDriver, page_id: str, prop: str, text: str) -> None:
    """Wait until the table on screen shows `text` in the cell (after a save's redirect)."""
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, f'tr[id="{page_id}"]') and cell(b, page_id, prop).text == text,
        f"the {prop} cell never showed {text!r}",
    )


def conflict_rows(result: dg.ExecuteInProcessResult) -> list[list[str]]:
    """The reconciliation's `conflicts_decided` table (deal, record, field, old, new, written to, rule)."""
    table = metadata(result, "reconciled_deals")["conflicts_decided"]
    lines = [line for line in table.splitlines() if line.startswith("|")][2:]  # past the header and rule
    return [[part.strip() for part in line.strip("|").split("|")] for line in lines]


async def test_a_persons_edit_in_the_browser_reaches_postgres_with_its_conflict_decided(
    world: TenantWorld,
    repository: DealRepository,
    instance: dg.DagsterInstance,
    sandbox_server: RunningSandbox,
    chromium: WebDriver,
) -> None:
    world.control.seed({"users": [MAYA], "databases": []})
    deal = await repository.create_opportunity(
        world.tenant_id,
        OpportunityCreate(name="Initech seats", deal_stage="Lead", custom_notes="Send the quote"),
    )
    assert (await sync_tenant(instance, world.resources, world.tenant_id)).success
    [page] = world.pages()

    # The deal the agent created is in the browser's table, as the sync wrote it.
    chromium.get(ui_url(sandbox_server.base_url))
    chromium.find_element(By.LINK_TEXT, "Deals").click()
    shows(chromium, page["id"], "Deal Name", "Initech seats")
    assert cell(chromium, page["id"], "Notes").text == "Send the quote"
    assert cell(chromium, page["id"], "Stage").text == "Lead"

    # Meanwhile the agent rewrites the notes (a human-owned field) and revalues the deal (shared).
    await repository.update_opportunity(
        world.tenant_id, deal.id, OpportunityUpdate(custom_notes="Quote sent", estimated_value=Decimal("4200"))
    )
    # A person edits the notes two minutes later by the sandbox's clock, as Maya.
    world.control.set_clock(datetime.now(UTC) + timedelta(minutes=2))
    cell(chromium, page["id"], "Notes").find_element(By.TAG_NAME, "a").click()
    notes = WebDriverWait(chromium, WAIT_SECONDS).until(lambda b: b.find_element(By.NAME, "value"))
    assert notes.get_attribute("value") == "Send the quote"
    notes.clear()
    notes.send_keys("Customer wants a call on Friday")
    Select(chromium.find_element(By.NAME, "user")).select_by_visible_text("Maya Lindqvist")
    chromium.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    shows(chromium, page["id"], "Notes", "Customer wants a call on Friday")
    assert "by Maya Lindqvist" in chromium.find_element(By.CSS_SELECTOR, f'tr[id="{page["id"]}"]').text
    [edited] = world.pages()
    maya = next(user["id"] for user in world.control.users() if user["name"] == MAYA["name"])
    assert edited["last_edited_by"]["id"] == maya

    result = await sync_tenant(instance, world.resources, world.tenant_id)

    assert result.success and all(check_results(result).values())
    # Both sides changed the notes: the human-owned field goes to the CRM's (the person's) value.
    assert metadata(result, "reconciled_deals")["conflicts"] == 1
    assert conflict_rows(result) == [
        [
            "Initech seats",
            str(deal.id),
            "custom_notes",
            "Quote sent",
            "Customer wants a call on Friday",
            "PostgreSQL",
            "human-owned",
        ]
    ]
    stored = await repository.get_opportunity(world.tenant_id, deal.id)
    assert stored is not None
    assert (stored.custom_notes, stored.estimated_value) == ("Customer wants a call on Friday", Decimal("4200"))
    # And the agent's new value, which only it changed, is what the person now sees.
    chromium.refresh()
    shows(chromium, page["id"], "Value", "4200")
    assert cell(chromium, page["id"], "Notes").text == "Customer wants a call on Friday"
