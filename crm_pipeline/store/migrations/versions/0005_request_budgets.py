"""Request budgets shared by every process that calls one CRM app (crm_pipeline.crm.budget).

- request_budgets: one row per budget key (an app, never a tenant: several tenants' runs may
  spend one app's budget): the day (UTC) and how many requests it has seen that day. Its row lock
  serialises the reservations of the key.
- request_reservations: the requests started in each pool's rolling window, by key and pool;
  rows older than the window are removed as the key is used.
- crm.reserve_request(budget, pool_name, max_requests, window_ms, per_day): takes a slot (0) or
  says how many seconds to wait ('Infinity' once the day's requests are spent), in one statement,
  timed by the server's clock after the row lock, so N processes never exceed a window together.

The budgets are not tenant data, so no row-level security: instead the application role gets no
privilege on either table, only EXECUTE on the function (which runs as the tables' owner): it can
reserve slots, never read, reset or forge another app's counts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE crm.request_budgets (
    budget_key  text PRIMARY KEY,
    day         date NOT NULL,
    used_today  bigint NOT NULL DEFAULT 0
);

CREATE TABLE crm.request_reservations (
    budget_key   text NOT NULL REFERENCES crm.request_budgets (budget_key) ON DELETE CASCADE,
    pool         text NOT NULL,
    reserved_at  timestamptz NOT NULL
);
CREATE INDEX request_reservations_window ON crm.request_reservations (budget_key, pool, reserved_at);

CREATE FUNCTION crm.reserve_request(
    budget text, pool_name text, max_requests integer, window_ms integer, per_day integer
) RETURNS double precision
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    today date;
    spent bigint;
    now_at timestamptz;
    window_start timestamptz;
    held bigint;
    oldest timestamptz;
BEGIN
    INSERT INTO crm.request_budgets (budget_key, day) VALUES (budget, (now() AT TIME ZONE 'UTC')::date)
        ON CONFLICT (budget_key) DO NOTHING;
    SELECT b.day, b.used_today INTO today, spent FROM crm.request_budgets AS b WHERE b.budget_key = budget FOR UPDATE;
    now_at := clock_timestamp();  -- read under the lock: reservations of a key are in time order
    IF today <> (now_at AT TIME ZONE 'UTC')::date THEN
        today := (now_at AT TIME ZONE 'UTC')::date;
        spent := 0;
    END IF;
    IF per_day > 0 AND spent >= per_day THEN
        RETURN 'Infinity'::double precision;
    END IF;
    window_start := now_at - make_interval(secs => window_ms / 1000.0);
    DELETE FROM crm.request_reservations AS r
        WHERE r.budget_key = budget AND r.pool = pool_name AND r.reserved_at <= window_start;
    SELECT count(*), min(r.reserved_at) INTO held, oldest
        FROM crm.request_reservations AS r WHERE r.budget_key = budget AND r.pool = pool_name;
    IF held >= max_requests THEN
        RETURN greatest(extract(epoch FROM oldest - window_start)::double precision, 0.001);
    END IF;
    INSERT INTO crm.request_reservations (budget_key, pool, reserved_at) VALUES (budget, pool_name, now_at);
    UPDATE crm.request_budgets AS b SET day = today, used_today = spent + 1 WHERE b.budget_key = budget;
    RETURN 0;
END
$$;

REVOKE ALL ON FUNCTION crm.reserve_request(text, text, integer, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm.reserve_request(text, text, integer, integer, integer) TO crm_pipeline_app;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP FUNCTION crm.reserve_request(text, text, integer, integer, integer)")
    op.execute("DROP TABLE crm.request_reservations")
    op.execute("DROP TABLE crm.request_budgets")
