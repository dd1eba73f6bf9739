"""No fragment of a database password appears in an error, its chain, a description or a repr,
however malformed the URL it came in."""

from __future__ import annotations

import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import URL

from crm_pipeline.settings import Settings
from crm_pipeline.store import Database, DatabaseUnavailableError, DatabaseURLError
from crm_pipeline.store.database import describe
from crm_pipeline.store.urls import MIN_SECRET_FRAGMENT, parse_database_url, redact

PASSWORD = "Pw@Secret_9x7"


def fragments(secret: str) -> set[str]:
    """Every piece of `secret` long enough to recognise."""
    size = min(len(secret), MIN_SECRET_FRAGMENT)
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def chain(error: BaseException | None) -> Iterator[BaseException]:
    """`error` and every exception chained to it, as cause or as context."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        yield error
        error = error.__cause__ or error.__context__


def assert_nothing_of(secret: str, error: BaseException) -> None:
    texts = [text for link in chain(error) for text in (str(link), repr(link), *map(str, link.args))]
    leaks = {piece for piece in fragments(secret) for text in texts if piece in text}
    assert not leaks, f"{leaks} of the password in {texts}"


@pytest.mark.parametrize(
    ("raw", "password"),
    [
        ("postgresql://crm:Pw@Secret_9x7@127.0.0.1:5432/crm", PASSWORD),  # unencoded @: the tail became the host
        ("postgresql://crm:Pw@Sec:ret_9x7@127.0.0.1:5432/crm", "Pw@Sec:ret_9x7"),  # ... and the port
        ("postgresql://crm:Pw@Sec/ret_9x7@127.0.0.1:5432/crm", "Pw@Sec/ret_9x7"),  # ... and the database
        ("postgresql://crm:Pw@?Secret_9x7@127.0.0.1:5432/crm", "Pw@?Secret_9x7"),  # ... and the query
        ("postgresql://crm:Pa:ss/wo%rd?x#Secret9@127.0.0.1:1/crm", "Pa:ss/wo%rd?x#Secret9"),  # parsed, refused
        ("postgresql://:OnlyAPassword9@127.0.0.1:1/crm", "OnlyAPassword9"),  # empty user
        ("postgresql://OnlyAPassword9@nonexistent-host.invalid/crm", "OnlyAPassword9"),  # password as user
        ("postgresql://crm:Secret_9x7@[::1/crm", "Secret_9x7"),  # unparseable host
        ("postgresql://crm:Secret_9x7@127.0.0.1:port/crm", "Secret_9x7"),  # unparseable port
        ("crm:Secret_9x7@127.0.0.1/crm", "Secret_9x7"),  # no scheme
        ("postgresql://crm:Secret_9x7@@127.0.0.1/crm", "Secret_9x7@"),
        ("Secret_9x7", "Secret_9x7"),
    ],
)
async def test_opening_a_malformed_url_reveals_no_part_of_the_password(raw: str, password: str, tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailableError) as caught:
        await Database.open(Settings(database_url=raw, app_database_url=raw, data_dir=tmp_path))
    assert_nothing_of(password, caught.value)


async def test_an_unencoded_at_sign_is_refused_with_how_to_encode_it(tmp_path: Path) -> None:
    raw = f"postgresql://crm:{PASSWORD}@127.0.0.1:5432/crm"
    with pytest.raises(DatabaseURLError, match="unencoded '@'.*%40"):
        await Database.open(Settings(database_url=raw, data_dir=tmp_path))


async def test_the_drivers_echo_of_the_user_name_and_password_is_scrubbed(database: Database) -> None:
    """The server names the role it refused; here the "role" is a password put where the user goes."""
    url = database.url.set(username="Secret_9x7_as_user", password="Secret_pw_9x7")
    raw = url.render_as_string(hide_password=False)
    with pytest.raises(DatabaseUnavailableError, match="cannot connect") as caught:
        await Database.open(Settings(database_url=raw, app_database_url=raw, database_name=url.database))
    assert_nothing_of("Secret_9x7_as_user", caught.value)
    assert_nothing_of("Secret_pw_9x7", caught.value)
    assert "***" in str(caught.value)


SPECIALS = "@:/%?#!$&*+,;=[]"


@given(st.text(alphabet=string.ascii_uppercase + SPECIALS, min_size=MIN_SECRET_FRAGMENT, max_size=24))
def test_any_password_is_refused_or_described_without_a_fragment_of_it(password: str) -> None:
    """Upper case letters and punctuation: nothing the fixed wording of a message could hold."""
    raw = f"postgresql://crm:{password}@127.0.0.1:5432/crm"
    try:
        url = parse_database_url(raw)
    except DatabaseURLError as error:
        assert_nothing_of(password, error)
    else:
        described = describe(url)
        assert not {piece for piece in fragments(password) if piece in described}, described


def test_redact_removes_every_fragment_ignoring_case() -> None:
    message = 'failed to resolve host "SECRET_9x7@127.0.0.1" or "secret_9X7@127.0.0.1"; Pw@Sec'
    redacted = redact(message, [PASSWORD])
    assert redacted == 'failed to resolve host "***@127.0.0.1" or "***@127.0.0.1"; ***'
    assert redact("nothing to hide", [PASSWORD]) == "nothing to hide"


def test_redact_never_leaves_a_fragment_the_mask_itself_forms() -> None:
    secret = "abcd***x"  # masking "abcd" in "abcdx" would leave "***x", another piece of it
    redacted = redact("host abcdx", [secret])
    assert not {piece for piece in fragments(secret) if piece in redacted}
    assert "withheld" in redacted


def test_a_description_never_holds_a_fragment_the_url_parts_share_with_the_password() -> None:
    url = URL.create("postgresql+psycopg", "crm", "deals_2026_secret", "db.example", 5432, "deals_2026")
    assert describe(url) == "db.example:5432/***"


def test_settings_and_urls_show_no_password() -> None:
    settings = Settings(database_url=f"postgresql://crm:{PASSWORD}@127.0.0.1/crm", notion_token="secret_TOKEN_123")
    for text in (repr(settings), str(settings), repr(settings.model_dump())):
        assert "Secret_9x7" not in text and "TOKEN_123" not in text
    url = parse_database_url("postgresql://crm:Pw%40Secret_9x7@127.0.0.1/crm")
    assert url.password == PASSWORD
    assert "Secret" not in repr(url) and "Secret" not in str(url)
