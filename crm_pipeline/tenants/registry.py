"""The tenant registry in the deal store (crm.tenant_connections, migration 0006).

The application role reads it (the schedule lists every active tenant in one query; a pass reads
its tenant's connection); only the owner's commands change it. Removing a connection detaches the
tenant from its CRM: its deals, change log and sync state stay in the deal store, so adding the
connection again resumes where the sync left off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy import RowMapping, func, select, text, update
from sqlalchemy.dialects import postgresql

from crm_pipeline.store import Database
from crm_pipeline.store.schema import TENANT_SETTING, sync_connections, tenant_connections, tenants
from crm_pipeline.tenants.connection import CONNECTOR_FIELDS, TenantConnection
from crm_pipeline.tenants.secrets import TokenUnavailableError, reencrypt

_COLUMNS = ("connector", "active", "base_url", "token_env", "token_file", "token_encrypted")


def _row(tenant: TenantConnection) -> dict[str, Any]:
    """The connection as the table's columns: the connector's own fields in ``settings``."""
    fields = tenant.model_dump()
    settings = {name: fields[name] for name in CONNECTOR_FIELDS[tenant.connector] if fields[name] is not None}
    return {"tenant_id": tenant.tenant_id, "settings": settings, **{name: fields[name] for name in _COLUMNS}}


def _connection(row: RowMapping) -> TenantConnection:
    return TenantConnection.model_validate(
        {"tenant_id": row["tenant_id"], **row["settings"], **{name: row[name] for name in _COLUMNS}}
    )


class TenantRegistry:
    """The tenants the code location syncs, with their connections."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def connections(self, *, active_only: bool = False) -> list[TenantConnection]:
        """Every registered connection (or the active ones), by tenant id, in one query."""
        query = select(tenant_connections).order_by(tenant_connections.c.tenant_id)
        if active_only:
            query = query.where(tenant_connections.c.active)
        async with self._database.registry_transaction() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [_connection(row) for row in rows]

    async def get(self, tenant_id: str) -> TenantConnection | None:
        query = select(tenant_connections).where(tenant_connections.c.tenant_id == tenant_id)
        async with self._database.registry_transaction() as connection:
            row = (await connection.execute(query)).mappings().first()
        return None if row is None else _connection(row)

    async def is_empty(self) -> bool:
        async with self._database.registry_transaction() as connection:
            return not (await connection.execute(select(func.count()).select_from(tenant_connections))).scalar_one()

    # -- the owner's commands ----------------------------------------------------------------------

    async def save(self, tenant: TenantConnection, name: str | None = None) -> None:
        """Register the tenant (if new, as ``name``) and add or replace its connection."""
        await self.save_all([tenant], {tenant.tenant_id: name} if name else None)

    async def save_all(self, connections: Sequence[TenantConnection], names: Mapping[str, str] | None = None) -> None:
        """Register the tenants (if new; named by ``names``, else by their ids) and add or replace
        their connections, in one transaction: all or none. A tenant given twice: the last wins."""
        names = names or {}
        rows = list({tenant.tenant_id: _row(tenant) for tenant in connections}.values())
        if not rows:
            return
        async with self._database.owner_transaction() as connection:
            await connection.execute(
                postgresql.insert(tenants)
                .values(
                    [{"id": row["tenant_id"], "name": names.get(row["tenant_id"], row["tenant_id"])} for row in rows]
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )
            insert = postgresql.insert(tenant_connections).values(rows)
            changed = {column: insert.excluded[column] for column in rows[0] if column != "tenant_id"}
            await connection.execute(
                insert.on_conflict_do_update(index_elements=["tenant_id"], set_={**changed, "updated_at": func.now()})
            )

    async def set_active(self, tenant_id: str, active: bool) -> bool:
        """Pause or resume a tenant's syncing; False when it has no connection."""
        async with self._database.owner_transaction() as connection:
            result = await connection.execute(
                update(tenant_connections)
                .where(tenant_connections.c.tenant_id == tenant_id)
                .values(active=active, updated_at=func.now())
            )
        return bool(result.rowcount)

    async def remove(self, tenant_id: str) -> bool:
        """Detach the tenant from its CRM (its connection, and a stored token with it); its deals
        and sync state stay. False when it had no connection."""
        async with self._database.owner_transaction() as connection:
            result = await connection.execute(
                tenant_connections.delete().where(tenant_connections.c.tenant_id == tenant_id)
            )
        return bool(result.rowcount)

    async def rotate_keys(self, keys: MultiFernet) -> int:
        """Re-encrypt every stored token with the newest key, in one transaction: all or none.
        Returns how many. A token no key decrypts stops it, naming its tenant."""
        stored = tenant_connections.c.token_encrypted
        async with self._database.owner_transaction() as connection:
            rows = (
                await connection.execute(
                    select(tenant_connections.c.tenant_id, stored).where(stored.is_not(None)).with_for_update()
                )
            ).all()
            for tenant_id, ciphertext in rows:
                try:
                    rotated = reencrypt(ciphertext, keys)
                except InvalidToken:
                    raise TokenUnavailableError(
                        f"tenant {tenant_id!r}: its token (stored (encrypted)) is decrypted by none of the keys given; "
                        "nothing was re-encrypted"
                    ) from None
                await connection.execute(
                    update(tenant_connections)
                    .where(tenant_connections.c.tenant_id == tenant_id)
                    .values(token_encrypted=rotated, updated_at=func.now())
                )
        return len(rows)

    async def forget_discovery(self, tenant_id: str) -> int:
        """Drop what the sync kept of the tenant's CRM connection (its data source, bot, property
        bindings by id), so its next pass asks for all of it and binds by name, as a first pass
        does. Returns how many connections' were dropped. Row-level security binds the owner too
        on that table, so the transaction is scoped to the tenant."""
        async with self._database.owner_transaction() as connection:
            await connection.execute(
                text("SELECT set_config(:setting, :tenant, true)"), {"setting": TENANT_SETTING, "tenant": tenant_id}
            )
            result = await connection.execute(
                sync_connections.delete().where(sync_connections.c.tenant_id == tenant_id)
            )
        return result.rowcount
