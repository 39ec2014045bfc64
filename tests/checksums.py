"""Order-independent fingerprints of warehouse tables, for "identical to an undisturbed run"."""
from __future__ import annotations

import sqlalchemy as sa

# When a row was loaded or built: differs between two runs by design, so left out.
BOOKKEEPING_COLUMNS = {"seen_at", "loaded_at", "built_at", "session_marks_built_at"}


def table_checksums(conn: sa.Connection, tables: list[str]) -> dict[str, str]:
    """Row count and md5 of every row (bookkeeping columns aside), per table."""
    sums = {}
    for table in tables:
        schema, name = table.split(".")
        columns = [c["name"] for c in sa.inspect(conn).get_columns(name, schema=schema)
                   if c["name"] not in BOOKKEEPING_COLUMNS]
        sums[table] = conn.execute(sa.text(
            f"select count(*) || ':' || md5(coalesce(string_agg(t::text, '|' order by t::text), '')) "
            f"from (select {', '.join(columns)} from {table}) t")).scalar()
    return sums
