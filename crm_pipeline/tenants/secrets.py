"""Reading a tenant's token from its reference, and the deployment's keys for stored tokens.

Stored tokens are encrypted with Fernet (AES-128-CBC with an HMAC) under the keys the deployment
provides in ``CRM_PIPELINE_SECRET_KEYS``: comma-separated, newest first. The newest encrypts; any
of them decrypts, so a new key is put in front, every stored token re-encrypted with it
(``crm-pipeline tenants rotate-key``), and only then the old key dropped. A token is only ever held
as ``SecretStr``; an error names the tenant and the reference (``env:NAME``, ``file:PATH``,
``stored (encrypted)``), never the token nor any part of a key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from crm_pipeline.tenants.connection import EnvToken, FileToken, StoredToken, TenantConnection

SECRET_KEYS_ENV = "CRM_PIPELINE_SECRET_KEYS"


class TokenUnavailableError(Exception):
    """A tenant's token cannot be read from its reference (the pass cannot run)."""


class SecretKeyError(Exception):
    """The deployment's keys are missing or malformed."""


def secret_keys(keys: SecretStr | None) -> MultiFernet:
    """The deployment's keys (newest first), as ``CRM_PIPELINE_SECRET_KEYS`` gives them."""
    names = [] if keys is None else [key.strip() for key in keys.get_secret_value().split(",") if key.strip()]
    if not names:
        raise SecretKeyError(f"{SECRET_KEYS_ENV} is not set: stored tokens need the deployment's key")
    try:
        return MultiFernet([Fernet(key) for key in names])
    except ValueError:
        raise SecretKeyError(
            f"{SECRET_KEYS_ENV} holds a malformed key: each is 32 url-safe base64-encoded bytes "
            "(crm-pipeline tenants generate-key)"
        ) from None


def generate_key() -> str:
    """A new key for ``CRM_PIPELINE_SECRET_KEYS``."""
    return Fernet.generate_key().decode("ascii")


def encrypt_token(token: SecretStr, keys: MultiFernet) -> str:
    """The token encrypted with the newest key (ASCII, as the registry stores it)."""
    return keys.encrypt(token.get_secret_value().encode("utf-8")).decode("ascii")


def reencrypt(ciphertext: str, keys: MultiFernet) -> str:
    """The same token encrypted with the newest key (InvalidToken when no key decrypts it)."""
    return keys.rotate(ciphertext.encode("ascii")).decode("ascii")


def read_token(tenant: TenantConnection, keys: SecretStr | None) -> SecretStr | None:
    """The tenant's token from its reference; None for an unset variable (the local API serves
    the tenant, as without a token today). ``keys``: ``CRM_PIPELINE_SECRET_KEYS``, for a stored token."""
    reference = tenant.token
    match reference:
        case EnvToken(name):
            value = os.environ.get(name, "")
            return SecretStr(value) if value else None
        case FileToken(path):
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                why = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
                raise _unavailable(tenant, f"the file cannot be read ({why})") from None
            if not value:
                raise _unavailable(tenant, "the file is empty")
            return SecretStr(value)
        case StoredToken(ciphertext):
            try:
                clear = secret_keys(keys).decrypt(ciphertext.encode("ascii"))
            except SecretKeyError as error:
                raise _unavailable(tenant, str(error)) from None
            except InvalidToken:
                raise _unavailable(
                    tenant,
                    f"no key in {SECRET_KEYS_ENV} decrypts it (a wrong key, or the one it was stored with dropped)",
                ) from None
            return SecretStr(clear.decode("utf-8"))


def _unavailable(tenant: TenantConnection, why: str) -> TokenUnavailableError:
    return TokenUnavailableError(f"tenant {tenant.tenant_id!r}: its token ({tenant.token}) is unavailable: {why}")
