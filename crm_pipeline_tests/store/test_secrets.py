"""No fragment of a database password appears in an error, its chain, a description or a repr,
however malformed the URL it came in; nor of a tenant's token, whichever its reference."""

from __future__ import annotations

import os
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import URL

from crm_pipeline.settings import Settings
from crm_pipeline.store import Database, DatabaseUnavailableError, DatabaseURLError
from crm_pipeline.store.database import describe
from crm_pipeline.store.urls import MIN_SECRET_FRAGMENT, parse_database_url, redact
from crm_pipeline.tenants import TenantConnection, TokenUnavailableError, read_token
from crm_pipeline.tenants.secrets import encrypt_token, secret_keys

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


# -- tenants' tokens: each reference kind's failure names the tenant and the reference, never the token

TOKEN = "ntn_Jx5Rb9Kw3Tq7Lz"


def _tenant(**reference: str) -> TenantConnection:
    return TenantConnection(tenant_id="acme", database_id="db-1", **reference)


def test_a_token_file_is_read_at_use_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "acme"
    secret.write_text(f"{TOKEN}\n")
    tenant = _tenant(token_file=str(secret))
    token = read_token(tenant, None)
    assert token is not None and token.get_secret_value() == TOKEN
    secret.write_text("ntn_rotated_in_place")  # a mounted secret changes under the same path
    token = read_token(tenant, None)
    assert token is not None and token.get_secret_value() == "ntn_rotated_in_place"
    assert TOKEN not in repr(tenant) + str(tenant.token) + repr(token)


def test_a_stored_token_is_only_ever_held_encrypted() -> None:
    key = Fernet.generate_key().decode()
    ciphertext = encrypt_token(SecretStr(TOKEN), secret_keys(SecretStr(key)))
    tenant = _tenant(token_encrypted=ciphertext)
    assert_nothing_of(TOKEN, ValueError(ciphertext, repr(tenant), str(tenant.token), tenant.model_dump_json()))
    assert str(tenant.token) == "stored (encrypted)" and ciphertext not in repr(tenant)
    token = read_token(tenant, SecretStr(key))
    assert token is not None and token.get_secret_value() == TOKEN


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("unreadable file", r"file:.*/acme\) is unavailable: the file cannot be read \(Permission denied\)"),
        ("missing file", r"file:.*/absent\) is unavailable: the file cannot be read \(No such file or directory\)"),
        ("empty file", r"file:.*/empty\) is unavailable: the file is empty"),
        ("missing key", r"stored \(encrypted\)\) is unavailable: CRM_PIPELINE_SECRET_KEYS is not set"),
        ("wrong key", r"stored \(encrypted\)\) is unavailable: no key in CRM_PIPELINE_SECRET_KEYS decrypts it"),
        ("malformed key", r"stored \(encrypted\)\) is unavailable: CRM_PIPELINE_SECRET_KEYS holds a malformed key"),
    ],
)
def test_a_token_that_cannot_be_read_names_the_tenant_and_the_reference_but_not_the_token(
    case: str, said: str, tmp_path: Path
) -> None:
    stored_with = Fernet.generate_key().decode()
    ciphertext = encrypt_token(SecretStr(TOKEN), secret_keys(SecretStr(stored_with)))
    unreadable = tmp_path / "acme"
    unreadable.write_text(TOKEN)
    unreadable.chmod(0)
    (tmp_path / "empty").write_text("\n")
    tenant, keys = {
        "unreadable file": (_tenant(token_file=str(unreadable)), None),
        "missing file": (_tenant(token_file=str(tmp_path / "absent")), None),
        "empty file": (_tenant(token_file=str(tmp_path / "empty")), None),
        "missing key": (_tenant(token_encrypted=ciphertext), None),
        "wrong key": (_tenant(token_encrypted=ciphertext), SecretStr(Fernet.generate_key().decode())),
        "malformed key": (_tenant(token_encrypted=ciphertext), SecretStr(f"{stored_with[:20]}")),
    }[case]
    if case == "unreadable file" and os.access(unreadable, os.R_OK):
        pytest.skip("this user reads files whatever their mode (root)")
    with pytest.raises(TokenUnavailableError, match=f"tenant 'acme': its token \\({said}") as refused:
        read_token(tenant, keys)
    assert_nothing_of(TOKEN, refused.value)
    assert_nothing_of(stored_with, refused.value)
