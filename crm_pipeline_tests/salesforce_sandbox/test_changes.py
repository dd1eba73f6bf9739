"""getUpdated and getDeleted through ``sf.Opportunity.updated``/``deleted``, and the Recycle Bin:
windows with their seconds dropped, 30 and 15 days back, ``latestDateCovered`` held by a
transaction in flight, ``earliestDateAvailable`` after a purge, and a restore keeping the Id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_pipeline.salesforce_sandbox import SalesforceControl

from .conftest import SALESFORCE_CLOCK
from .helpers import opportunity, refused

START = SALESFORCE_CLOCK - timedelta(hours=1)


def test_updated_lists_ids_by_system_modstamp_with_seconds_dropped(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    first = sf.Opportunity.create(opportunity())["id"]  # 09:30:00
    salesforce_control.advance_clock(150)
    second = sf.Opportunity.create(opportunity())["id"]  # 09:32:30
    salesforce_control.advance_clock(600)
    window = sf.Opportunity.updated(
        SALESFORCE_CLOCK + timedelta(seconds=59), datetime(2026, 3, 2, 9, 32, 59, tzinfo=UTC)
    )
    assert window == {"ids": [first], "latestDateCovered": "2026-03-02T09:32:00.000+0000"}  # [09:30, 09:32)
    everything = sf.Opportunity.updated(START, SALESFORCE_CLOCK + timedelta(days=1))
    assert everything["ids"] == sorted([first, second])
    assert everything["latestDateCovered"] == "2026-03-02T09:42:00.000+0000"  # not past the present
    salesforce_control.system_touch("Opportunity", first)
    assert sf.Opportunity.updated(datetime(2026, 3, 2, 9, 40, tzinfo=UTC), SALESFORCE_CLOCK + timedelta(hours=1))[
        "ids"
    ] == [first]


def test_a_transaction_in_flight_holds_latest_date_covered(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    salesforce_control.advance_clock(600)
    salesforce_control.hold_coverage(datetime(2026, 3, 2, 9, 35, tzinfo=UTC))
    answer = sf.Opportunity.updated(START, SALESFORCE_CLOCK + timedelta(hours=1))
    assert answer["latestDateCovered"] == "2026-03-02T09:35:00.000+0000"
    salesforce_control.hold_coverage(None)
    assert (
        sf.Opportunity.deleted(START, SALESFORCE_CLOCK + timedelta(hours=1))["latestDateCovered"]
        == "2026-03-02T09:40:00.000+0000"
    )


def test_windows_reach_back_30_days_for_updates_and_15_for_deletes(sf: Salesforce) -> None:
    assert sf.Opportunity.updated(SALESFORCE_CLOCK - timedelta(days=29), SALESFORCE_CLOCK)["ids"] == []
    for call in (
        lambda: sf.Opportunity.updated(SALESFORCE_CLOCK - timedelta(days=31), SALESFORCE_CLOCK),
        lambda: sf.Opportunity.deleted(SALESFORCE_CLOCK - timedelta(days=16), SALESFORCE_CLOCK),
        lambda: sf.Opportunity.updated(SALESFORCE_CLOCK, START),
    ):
        status, errors = refused(call, SalesforceMalformedRequest)
        assert (status, errors[0]["errorCode"]) == (400, "INVALID_REPLICATION_DATE")


def test_deleted_lists_the_recycle_bin_until_the_log_is_purged(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    gone = sf.Opportunity.create(opportunity())["id"]
    salesforce_control.advance_clock(90)
    sf.Opportunity.delete(gone)
    answer = sf.Opportunity.deleted(START, SALESFORCE_CLOCK + timedelta(hours=1))
    assert answer["deletedRecords"] == [{"id": gone, "deletedDate": "2026-03-02T09:31:30.000+0000"}]
    assert answer["earliestDateAvailable"] == "2026-02-15T09:31:00.000+0000"
    assert gone not in sf.Opportunity.updated(START, SALESFORCE_CLOCK + timedelta(hours=1))["ids"]
    salesforce_control.purge_delete_log(datetime(2026, 3, 2, 9, 45, tzinfo=UTC))
    status, errors = refused(lambda: sf.Opportunity.deleted(START, SALESFORCE_CLOCK + timedelta(hours=1)))
    assert (status, errors[0]["errorCode"]) == (400, "INVALID_REPLICATION_DATE")
    later = sf.Opportunity.deleted(datetime(2026, 3, 2, 9, 45, tzinfo=UTC), SALESFORCE_CLOCK + timedelta(hours=1))
    assert later["earliestDateAvailable"] == "2026-03-02T09:45:00.000+0000" and later["deletedRecords"] == []


def test_a_restore_keeps_the_id_and_moves_system_modstamp(
    sf: Salesforce, salesforce_control: SalesforceControl
) -> None:
    record_id = sf.Opportunity.create(opportunity(Sync_Key__c="k-1"))["id"]
    sf.Opportunity.delete(record_id)
    assert sf.Opportunity.upsert("Sync_Key__c/k-1", opportunity()) == 201  # a deleted record holds no key
    salesforce_control.advance_clock(60)
    with pytest.raises(httpx.HTTPStatusError) as clash:  # its key is another record's now
        salesforce_control.undelete("Opportunity", record_id)
    assert clash.value.response.json()[0]["errorCode"] == "DUPLICATE_VALUE"
    sf.Opportunity.delete(sf.Opportunity.get_by_custom_id("Sync_Key__c", "k-1")["Id"])
    restored = salesforce_control.undelete("Opportunity", record_id)
    assert (restored["Id"], restored["IsDeleted"], restored["SystemModstamp"]) == (
        record_id,
        False,
        "2026-03-02T09:31:00.000+0000",
    )
    assert sf.Opportunity.get_by_custom_id("Sync_Key__c", "k-1")["Id"] == record_id
    assert record_id in sf.Opportunity.updated(START, SALESFORCE_CLOCK + timedelta(hours=1))["ids"]
