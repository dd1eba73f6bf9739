"""A sales team's CRM as a real workspace holds it: a Companies database, and a Deals database with
two data sources (open deals and a 2025 archive) carrying every property type the sandbox knows."""

from __future__ import annotations

from typing import Any

COMPANIES_DB = "0c0a0b0c-0d0e-4f00-8a1b-2c3d4e5f6a7b"
COMPANIES_DS = "1c1a1b1c-1d1e-4f11-8a1b-2c3d4e5f6a7b"
CRM_DB = "2c2a2b2c-2d2e-4f22-8a1b-2c3d4e5f6a7b"
DEALS_DS = "3c3a3b3c-3d3e-4f33-8a1b-2c3d4e5f6a7b"
ARCHIVE_DS = "4c4a4b4c-4d4e-4f44-8a1b-2c3d4e5f6a7b"
ANA = {"name": "Ana Ruiz", "email": "ana@sales.example"}
BEN = {"name": "Ben Okafor", "email": "ben@sales.example"}

TEAM_COLUMNS: dict[str, Any] = {  # what a team keeps beside a deal's own columns, one of each other type
    "Tags": {"multi_select": {"options": [{"name": "VIP"}, {"name": "EMEA"}, {"name": "Renewal"}]}},
    "Owner": {"people": {}},
    "Hot": {"checkbox": {}},
    "Website": {"url": {}},
    "Phone": {"phone_number": {}},
    "Notes": {"rich_text": {}},
    "Contract": {"files": {}},
    "Company": {
        "relation": {"data_source_id": COMPANIES_DS, "type": "dual_property", "dual_property": {}},
    },
    "Weighted": {"formula": {"expression": 'prop("Value") * 0.5'}},
    "Company tiers": {
        "rollup": {"relation_property_name": "Company", "rollup_property_name": "Tier", "function": "show_original"}
    },
    "Deal ID": {"unique_id": {"prefix": "DEAL"}},
    "Created": {"created_time": {}},
    "Created by": {"created_by": {}},
    "Edited": {"last_edited_time": {}},
    "Edited by": {"last_edited_by": {}},
}
DEAL_PROPERTIES: dict[str, Any] = {
    "Deal": {"title": {}},
    "Stage": {
        "status": {
            "options": [
                {"name": "Lead", "color": "gray"},
                {"name": "Proposal", "color": "blue"},
                {"name": "Won", "color": "green"},
                {"name": "Lost", "color": "red"},
            ],
            "groups": [
                {"name": "To-do", "color": "gray", "options": ["Lead"]},
                {"name": "In progress", "color": "blue", "options": ["Proposal"]},
                {"name": "Complete", "color": "green", "options": ["Won", "Lost"]},
            ],
        }
    },
    "Value": {"number": {"format": "euro"}},
    "Close": {"date": {}},
    "Email": {"email": {}},
    **TEAM_COLUMNS,
}
COMPANIES: dict[str, Any] = {  # the database TEAM_COLUMNS' relation and rollup read
    "title": "Companies",
    "id": COMPANIES_DB,
    "data_source_id": COMPANIES_DS,
    "properties": {
        "Name": {"title": {}},
        "Tier": {"multi_select": {"options": [{"name": "Enterprise"}, {"name": "SMB"}]}},
    },
    "pages": [{"Name": "Acme", "Tier": ["Enterprise"]}, {"Name": "Globex", "Tier": ["SMB"]}],
}

SEED: dict[str, Any] = {
    "users": [ANA, BEN],
    "databases": [
        COMPANIES,
        {
            "title": "CRM",
            "id": CRM_DB,
            "data_sources": [
                {
                    "title": "Deals",
                    "id": DEALS_DS,
                    "properties": DEAL_PROPERTIES,
                    "pages": [
                        {
                            "Deal": "Acme renewal",
                            "Stage": "Proposal",
                            "Tags": ["VIP", "Renewal"],
                            "Owner": ["Ana Ruiz"],
                            "Hot": True,
                            "Value": 12000,
                            "Close": "2026-12-15",
                            "Website": "https://acme.example",
                            "Phone": "+44 20 7946 0000",
                            "Email": "jane@acme.example",
                            "Notes": "Wants a 3-year term",
                            "Contract": ["https://files.example/acme-msa.pdf"],
                            "Company": ["Acme"],
                            "Weighted": 6000,
                            "Company tiers": {
                                "type": "array",
                                "array": [
                                    {
                                        "type": "multi_select",
                                        "multi_select": [{"id": "t1", "name": "Enterprise", "color": "blue"}],
                                    },
                                ],
                            },
                        },
                        {
                            "Deal": "Globex pilot",
                            "Stage": "Lead",
                            "Tags": ["EMEA"],
                            "Owner": ["ben@sales.example", "Ana Ruiz"],
                            "Value": 4000,
                            "Company": ["Globex"],
                            "Weighted": 2000,
                        },
                        {"Deal": "Initech", "Stage": "Won", "Weighted": {"type": "string", "string": "n/a"}},
                        {"Deal": "Umbrella"},
                    ],
                },  # fmt: skip
                {
                    "title": "Archive 2025",
                    "id": ARCHIVE_DS,
                    "properties": {"Deal": {"title": {}}, "Lost reason": {"select": {}}},
                    "pages": [{"Deal": "Hooli", "Lost reason": "Budget"}],
                },
            ],
        },
    ],
}
