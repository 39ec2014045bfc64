"""Loading validated batches into the warehouse's ``raw`` schema.

Every school batch loads in one transaction through ``COPY``: either all of
it lands or none of it does. Re-running a night replaces that night's batch.
Marks are kept as a history: a mark is stored again only when a later
extract changes it (an ``N`` resolved to ``I``, a missing mark filled), with
the extract date it was first seen in, so figures "as at" any date can be
reproduced and every amendment audited.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from .export_layout import DERIVED_FILES, EXPORT_FILES
from .paths import var_dir
from .sources import LandedBatch
from .validate import ValidationReport, drop_staged, staged_marks_table

RAW_DDL = """
create schema if not exists raw;

create table if not exists raw.register_marks (
    school_urn    text not null,
    pupil_id      text not null,
    session_date  date not null,
    session       text not null check (session in ('AM', 'PM')),
    mark          text,               -- null: a missing mark
    minutes_late  smallint,
    comment       text,
    extract_date  date not null,      -- the extract this version was first seen in
    seen_at       timestamptz not null default now(),
    primary key (school_urn, pupil_id, session_date, session, extract_date)
);
-- A night's incremental dbt run reads the versions its extract added.
create index if not exists register_marks_extract_date on raw.register_marks (extract_date);
comment on table raw.register_marks is
    'Every version of every attendance mark, one row per change, keyed by the extract that first carried it.';

create table if not exists raw.pupils (
    school_urn text not null, pupil_id text not null, upn text, legal_forename text, legal_surname text,
    date_of_birth date, sex text, ethnicity text, year_group text, form text,
    pupil_premium boolean, fsm boolean, fsm6 boolean, sen_provision text, eal boolean, looked_after boolean,
    previously_looked_after boolean, child_in_need boolean, child_protection_plan boolean,
    extract_date date not null,
    primary key (school_urn, extract_date, pupil_id)
);

create table if not exists raw.enrolments (
    school_urn text not null, pupil_id text not null, admission_date date not null, leaving_date date,
    enrolment_status text, extract_date date not null,
    primary key (school_urn, extract_date, pupil_id, admission_date)
);

create table if not exists raw.attainment (
    school_urn text not null, pupil_id text not null, academic_year integer not null, key_stage text not null,
    attainment_8 numeric, progress_8 numeric, english_maths_grade_4_plus boolean,
    english_maths_grade_5_plus boolean, ks2_reading_writing_maths_expected boolean,
    extract_date date not null,
    primary key (school_urn, extract_date, pupil_id, academic_year, key_stage)
);

create table if not exists raw.transfer_attendance (
    school_urn text not null, upn text not null, source_urn text, source_la text, source_estab text,
    academic_year integer not null, sessions_possible integer, sessions_attended integer,
    sessions_authorised integer, sessions_unauthorised integer, file text, extract_date date not null
);
comment on table raw.transfer_attendance is 'Attendance totals from Common Transfer Files of pupils who joined.';

create table if not exists raw.transfer_marks (
    school_urn text not null, upn text not null, source_urn text, session_date date not null,
    session text not null, mark text, file text, extract_date date not null
);

create table if not exists raw.purge_log (
    purged_at       timestamptz not null default now(),
    table_name      text not null,
    cutoff_date     date not null,
    rows_purged     bigint not null,
    retention_years integer not null
);
comment on table raw.purge_log is 'What the retention job removed, and under which rule.';

create table if not exists raw.schools (
    school_urn  text primary key,
    school_name text not null,
    phase       text not null,
    la_code     text
);

create table if not exists raw.load_batches (
    school_urn          text not null,
    extract_date        date not null,
    status              text not null check (status in ('loaded', 'quarantined', 'extract_failed')),
    reason              jsonb,
    marks_in_extract    integer,
    mark_versions_added integer,
    pupils              integer,
    enrolments          integer,
    landing_folder      text,
    data_docs           text,
    recorded_at         timestamptz not null default now(),
    primary key (school_urn, extract_date)
);
"""

VALIDATED_FILES = {**EXPORT_FILES, **DERIVED_FILES}
# Snapshot tables: each extract's rows replace that extract's earlier load.
SNAPSHOT_TABLE_FOR_FILE = {
    "pupils.csv": "raw.pupils",
    "enrolments.csv": "raw.enrolments",
    "attainment.csv": "raw.attainment",
    "transfer_attendance.csv": "raw.transfer_attendance",
    "transfer_marks.csv": "raw.transfer_marks",
}


@dataclass
class LoadResult:
    school_urn: str
    extract_date: str
    marks_in_extract: int
    mark_versions_added: int
    pupils: int
    enrolments: int

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def connect(url: str, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=autocommit)


def ensure_raw_schema(url: str) -> None:
    with connect(url) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext('trust_attendance.raw_ddl'))")
        conn.execute(RAW_DDL)


def sync_schools(url: str, schools) -> None:
    """Make raw.schools list exactly the schools in the trust config."""
    with connect(url) as conn:
        conn.execute("create temp table incoming_schools (like raw.schools) on commit drop")
        with conn.cursor().copy("copy incoming_schools from stdin") as copy:
            for school in schools:
                copy.write_row((school.urn, school.name, school.phase, school.la_code))
        conn.execute(
            """
            insert into raw.schools select * from incoming_schools
            on conflict (school_urn) do update set school_name = excluded.school_name,
                phase = excluded.phase, la_code = excluded.la_code
            """
        )
        conn.execute("delete from raw.schools where school_urn not in (select school_urn from incoming_schools)")


def validated_dir(batch: LandedBatch) -> Path:
    return var_dir() / "validated" / batch.school_urn / batch.extract_date.isoformat()


def write_validated(batch: LandedBatch, frames: dict[str, pd.DataFrame]) -> Path:
    """Write the parsed, normalised small files as CSV in the raw tables' column order, ready for COPY
    (the marks wait in the validation schema)."""
    folder = validated_dir(batch)
    folder.mkdir(parents=True, exist_ok=True)
    for name, columns in VALIDATED_FILES.items():
        if name in frames:
            frames[name][columns].to_csv(folder / name, index=False, header=False)
        else:
            (folder / name).unlink(missing_ok=True)
    return folder


def _create_incoming(conn: psycopg.Connection, name: str, table: str, columns: list[str]) -> None:
    """A temporary table with the target's column types but none of its constraints."""
    conn.execute(f"create temp table {name} on commit drop as select {', '.join(columns)} from {table} with no data")


def _copy(conn: psycopg.Connection, table: str, columns: list[str], path: Path) -> None:
    with conn.cursor().copy(f"copy {table} ({', '.join(columns)}) from stdin (format csv)") as copy:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                copy.write(chunk)


class LoadBegun:
    """A school batch's load in one transaction, marks from where validation staged them, begun on
    a thread while the batch's GX checks run: the load waits on PostgreSQL and the checks on Python,
    so the two share the machine's cores instead of taking turns. Nothing is visible until
    ``commit`` with the checks' report; leaving the ``with`` block without it rolls the load back,
    as if it had never begun."""

    def __init__(self, url: str, batch: LandedBatch, staged_marks: int):
        self.batch, self.conn = batch, connect(url)
        self.writer = ThreadPoolExecutor(1, thread_name_prefix=f"load-{batch.school_urn}")
        self.written = self.writer.submit(_write_batch, self.conn, batch, staged_marks)

    def commit(self, report: ValidationReport) -> LoadResult:
        """Record the batch as loaded with ``report``, drop its stage and commit; raises what the
        load raised."""
        in_extract, added, counts = self.written.result()
        _record(self.conn, self.batch, "loaded", report.to_dict() if report.findings else None,
                in_extract, added, counts["raw.pupils"], counts["raw.enrolments"], report.data_docs)
        drop_staged(self.conn, self.batch)
        self.conn.commit()
        return LoadResult(self.batch.school_urn, self.batch.extract_date.isoformat(), in_extract, added,
                          counts["raw.pupils"], counts["raw.enrolments"])

    def __enter__(self) -> "LoadBegun":
        return self

    def __exit__(self, *exc) -> None:
        # The connection is the thread's until the load ends, however it ends (shutdown waits for
        # it); a load the checks did not let through (or that failed) rolls back before its stage
        # is dropped.
        self.writer.shutdown()
        try:
            if not self.conn.broken:
                self.conn.rollback()  # the load, unless it was committed
        finally:
            self.conn.close()


def _write_batch(conn: psycopg.Connection, batch: LandedBatch, staged_marks: int) -> tuple[int, int, dict[str, int]]:
    """Write a staged batch into the raw tables, uncommitted: (marks in the extract, mark versions
    added, rows per snapshot table)."""
    folder = validated_dir(batch)
    params = {"urn": batch.school_urn, "d": batch.extract_date}
    staged = staged_marks_table(batch)
    in_extract = conn.execute(sql.SQL("select count(*) from {}").format(staged)).fetchone()[0]
    if in_extract != staged_marks:
        # The stage is unlogged: a server crash empties it. Validating again restages it.
        raise RuntimeError(f"school {batch.school_urn}: {in_extract} staged marks where validation staged "
                           f"{staged_marks}; re-run the school's ingest_school task (it validates again)")
    # A re-run of this night replaces what this night added.
    conn.execute("delete from raw.register_marks where school_urn = %(urn)s and extract_date = %(d)s", params)
    # From the batch log: asked of the marks, PostgreSQL walked the extract_date index through every
    # other school's history first (up to 4.5 s a school at 100 schools).
    has_history = conn.execute(
        "select exists (select 1 from raw.load_batches where school_urn = %(urn)s and extract_date < %(d)s"
        " and status = 'loaded')", params,
    ).fetchone()[0]
    # A school's first batch has nothing to compare with: every mark is a first version.
    # Otherwise the latest earlier version of each key, read by one index range per pupil over
    # the extract's dates (a night re-sends days, so most keys have one), not a lookup per mark.
    previous_version = "" if not has_history else """
        left join (
            select distinct on (r.pupil_id, r.session_date, r.session)
                r.pupil_id, r.session_date, r.session, r.mark, r.minutes_late, r.comment
            from raw.register_marks as r
            where r.school_urn = %(urn)s and r.extract_date < %(d)s
              and r.pupil_id = any(array(select distinct pupil_id from incoming))
              and r.session_date between (select min(session_date) from incoming)
                                     and (select max(session_date) from incoming)
            order by r.pupil_id, r.session_date, r.session, r.extract_date desc
        ) as previous
            on previous.pupil_id = incoming.pupil_id and previous.session_date = incoming.session_date
            and previous.session = incoming.session
        where previous.pupil_id is null
           or (previous.mark, previous.minutes_late, previous.comment)
              is distinct from (incoming.mark, incoming.minutes_late, incoming.comment)"""
    added = conn.execute(
        sql.SQL("""
        with incoming as (
            select school_urn, pupil_id, session_day as session_date, session, mark,
                cast(minutes_late as smallint) as minutes_late, comment
            from {}
        )
        insert into raw.register_marks
            (school_urn, pupil_id, session_date, session, mark, minutes_late, comment, extract_date)
        select incoming.school_urn, incoming.pupil_id, incoming.session_date, incoming.session, incoming.mark,
            incoming.minutes_late, incoming.comment, %(d)s
        from incoming
        """ + previous_version).format(staged),
        params,
    ).rowcount
    counts = {}
    for name, table in SNAPSHOT_TABLE_FOR_FILE.items():
        columns = VALIDATED_FILES[name]
        conn.execute(f"delete from {table} where school_urn = %(urn)s and extract_date = %(d)s", params)
        if not (folder / name).exists():
            continue
        _create_incoming(conn, "incoming", table, columns)
        _copy(conn, "incoming", columns, folder / name)
        counts[table] = conn.execute(
            f"insert into {table} ({', '.join(columns)}, extract_date) "
            f"select {', '.join(columns)}, %(d)s from incoming", params
        ).rowcount
        conn.execute("drop table incoming")
    return in_extract, added, counts


def _record(conn, batch: LandedBatch | None, status: str, reason: dict | None, marks: int | None = None,
            added: int | None = None, pupils: int | None = None, enrolments: int | None = None,
            data_docs: str | None = None, school_urn: str | None = None, extract_date: dt.date | None = None) -> None:
    conn.execute(
        """
        insert into raw.load_batches (school_urn, extract_date, status, reason, marks_in_extract,
            mark_versions_added, pupils, enrolments, landing_folder, data_docs)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict (school_urn, extract_date) do update set
            status = excluded.status, reason = excluded.reason, marks_in_extract = excluded.marks_in_extract,
            mark_versions_added = excluded.mark_versions_added, pupils = excluded.pupils,
            enrolments = excluded.enrolments, landing_folder = excluded.landing_folder,
            data_docs = excluded.data_docs, recorded_at = now()
        """,
        (school_urn or batch.school_urn, extract_date or batch.extract_date, status,
         json.dumps(reason) if reason else None, marks, added, pupils, enrolments,
         str(batch.folder) if batch else None, data_docs),
    )


def quarantine(url: str, batch: LandedBatch, report: ValidationReport, quarantine_root: Path) -> Path:
    """Keep the batch as it arrived, with the reasons, and mark the school failed for the night.

    Nothing from the batch is loaded; what earlier nights loaded is untouched.
    """
    target = quarantine_root / batch.school_urn / batch.extract_date.isoformat()
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(batch.folder, target)
    (target / "reason.json").write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    shutil.rmtree(validated_dir(batch), ignore_errors=True)  # written before the checks failed: nothing to load
    with connect(url) as conn:
        _record(conn, batch, "quarantined", report.to_dict(), data_docs=report.data_docs)
        drop_staged(conn, batch)
    return target


def record_extract_failure(url: str, school_urn: str, extract_date: dt.date, error: str) -> None:
    with connect(url) as conn:
        _record(conn, None, "extract_failed", {"error": error}, school_urn=school_urn, extract_date=extract_date)


RETAINED_TABLES = {  # table: its date column
    "raw.register_marks": "session_date",
    "raw.transfer_marks": "session_date",
}


def purge_expired(url: str, today: dt.date, retention_years: int = 3) -> dict[str, int]:
    """Delete marks older than the retention period (policy: registers kept three years),
    recording what went in raw.purge_log, in one transaction."""
    cutoff = dt.date(today.year - retention_years, 9, 1) if today.month >= 9 else dt.date(
        today.year - retention_years - 1, 9, 1)
    purged = {}
    with connect(url) as conn:
        for table, column in RETAINED_TABLES.items():
            rows = conn.execute(f"delete from {table} where {column} < %s", (cutoff,)).rowcount
            conn.execute("insert into raw.purge_log (table_name, cutoff_date, rows_purged, retention_years) "
                         "values (%s, %s, %s, %s)", (table, cutoff, rows, retention_years))
            purged[table] = rows
    return purged
