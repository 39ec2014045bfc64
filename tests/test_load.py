"""A school's load begins beside its GX checks, in a transaction only passing checks commit:
nothing of it is visible while they run, and a batch they refuse leaves the warehouse as it was."""
from __future__ import annotations

import datetime as dt
import time

import sqlalchemy as sa

import handbuilt
from checksums import table_checksums
from trust_attendance import nightly, validate
from trust_attendance.load import validated_dir
from trust_attendance.paths import var_dir
from trust_attendance.sources import LandedBatch

NIGHT = dt.date(2026, 9, 19)  # registers to Friday 18 September
RAW_TABLES = ["raw.register_marks", "raw.pupils", "raw.enrolments"]


def _count_night(conn) -> int:
    return conn.execute(sa.text("select count(*) from raw.register_marks where extract_date = :d"), {"d": NIGHT}).scalar()


def _wait_for_the_begun_load(conn, timeout: float = 30) -> None:
    """Until another session is idle in a transaction that holds the last table the load writes
    (raw.transfer_marks, whose night's rows it replaces last): the load is written, not committed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.execute(sa.text("""
                select count(*) from pg_locks join pg_stat_activity using (pid)
                where pg_locks.relation = 'raw.transfer_marks'::regclass and pg_locks.mode = 'RowExclusiveLock'
                  and pg_stat_activity.state = 'idle in transaction' and pid <> pg_backend_pid()""")).scalar():
            return
        time.sleep(0.01)
    raise AssertionError("the load never began beside the checks")


def test_a_rerun_its_checks_refuse_rolls_its_begun_load_back(database_url, monkeypatch):
    trust = var_dir() / "load_trust"
    trust.mkdir(parents=True, exist_ok=True)
    (trust / "trust.yml").write_text("trust_name: Load test\nschools: []\n")
    handbuilt.write_school(trust, NIGHT)
    monkeypatch.setenv("TRUST_CONFIG", str(trust / "trust.yml"))
    monkeypatch.setenv("WAREHOUSE_URL", database_url)
    nightly.prepare_warehouse()
    first = nightly.ingest_school(handbuilt.URN, NIGHT)
    # 2 pupils x 10 days x 2 sessions, every one a first version.
    assert first["loaded"]["mark_versions_added"] == 40 and first["quarantined_to"] is None
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        before = table_checksums(conn, RAW_TABLES)

    # The night is sent again with an unknown code: it parses and stages, then GX refuses it.
    marks = trust / "drop" / handbuilt.URN / NIGHT.isoformat() / "marks.csv"
    lines = marks.read_text().splitlines()
    [i] = [n for n, line in enumerate(lines) if line.startswith(f"{handbuilt.URN},HB-2,2026-09-14,AM,")]
    lines[i] = f"{handbuilt.URN},HB-2,2026-09-14,AM,H,,"  # H is not an attendance code
    marks.write_text("\n".join(lines) + "\n")
    seen_while_checked = {}
    check_batch = validate.check_batch

    def checked_while_the_load_waits(batch: LandedBatch, url: str, report, frames) -> None:
        with engine.connect() as conn:
            _wait_for_the_begun_load(conn)
            # The begun load has deleted the night's 40 marks (a re-run replaces them) and written
            # 40 again, uncommitted: from outside, the first run's 40 are still all there is.
            seen_while_checked["marks"] = _count_night(conn)
        check_batch(batch, url, report, frames)

    monkeypatch.setattr(validate, "check_batch", checked_while_the_load_waits)
    second = nightly.ingest_school(handbuilt.URN, NIGHT)

    assert seen_while_checked == {"marks": 40}
    assert second["loaded"] is None and second["quarantined_to"]
    with engine.connect() as conn:
        assert table_checksums(conn, RAW_TABLES) == before  # the first run's load, untouched
        assert conn.execute(sa.text("select status from raw.load_batches where school_urn = :u"),
                            {"u": handbuilt.URN}).scalar() == "quarantined"
        # The rolled-back load's stage is dropped and its connection closed.
        assert conn.execute(sa.text("select count(*) from pg_tables where schemaname = 'validation' "
                                    "and tablename <> 'small_file_checks'")).scalar() == 0
        assert conn.execute(sa.text("select count(*) from pg_stat_activity where datname = current_database() "
                                    "and pid <> pg_backend_pid() and state like 'idle in transaction%'")).scalar() == 0
    assert not validated_dir(LandedBatch(handbuilt.URN, NIGHT, marks.parent)).exists()
    engine.dispose()
