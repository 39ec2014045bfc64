"""Proving a landed batch is sound before it reaches the warehouse.

Two layers. Parsing refuses files that cannot be read at all (wrong encoding,
missing or unexpected columns, ragged rows). Then Great Expectations runs the
suites in ``expectations/`` as real checkpoints, with the valid code sets read
from the dbt code seed. Every failure names the school, file, line and rule;
``critical`` failures quarantine the batch, ``warning`` ones load it and go in
the exception report.

The marks, a year or two of every pupil's sessions, never pass through Python:
PostgreSQL's COPY parses marks.csv into a table of the ``validation`` schema,
GX checks that table where it lies (SQL datasource), and the load step inserts
from it. Memory does not grow with the size of a school or trust. The small
files (pupils, enrolments, results) are parsed and checked with pandas, unless
the school sent the very same file to a batch already checked: its findings
stand from that batch (``small_file_findings``).
"""
from __future__ import annotations

import codecs
import copy
import csv
import datetime as dt
import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2
import pandas as pd
import psycopg
from psycopg import sql

from .school_calendar import academic_year_start
from .codes import CODES_2024_IN_FORCE_FROM, codes_valid_between
from .export_layout import EXPORT_FILES, MARK_COLUMNS, OPTIONAL_FILES
from .paths import EXPECTATIONS_DIR, var_dir
from .sources import LandedBatch

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
log = logging.getLogger(__name__)

LAYOUT = EXPORT_FILES
MARKS_FILE = "marks.csv"
COMPLETENESS = "register completeness"  # not a file: every pupil on roll marked for every open session
SUITE_FOR_FILE = {MARKS_FILE: "register_marks", "pupils.csv": "pupils", "enrolments.csv": "enrolments",
                  "attainment.csv": "attainment", COMPLETENESS: "register_completeness"}
STAGING_SCHEMA = "validation"
BOOLEAN_COLUMNS = {
    "pupils.csv": ("pupil_premium", "fsm", "fsm6", "eal", "looked_after", "previously_looked_after",
                   "child_in_need", "child_protection_plan"),
    "attainment.csv": ("english_maths_grade_4_plus", "english_maths_grade_5_plus", "ks2_reading_writing_maths_expected"),
}
TRUE_WORDS, FALSE_WORDS = {"y", "yes", "true", "t", "1"}, {"n", "no", "false", "f", "0"}
MISSING_MARKS = {"", "-"}
MAX_LISTED_ROWS = 20
MAX_FIELD_CHARS = 500
HISTORY_ACADEMIC_YEARS = 2  # an extract may carry the previous academic year as well as the current one


@dataclass
class Finding:
    severity: str  # "critical" quarantines the batch; "warning" loads it and is reported
    school_urn: str
    file: str
    rule: str
    check: str
    lines: list[int] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    count: int = 0

    def message(self) -> str:
        where = ""
        if self.lines:
            shown = ", ".join(str(n) for n in self.lines[:MAX_LISTED_ROWS])
            more = f" and {self.count - len(self.lines[:MAX_LISTED_ROWS])} more" if self.count > MAX_LISTED_ROWS else ""
            where = f", line{'s' if self.count > 1 else ''} {shown}{more}"
        values = f" (values: {', '.join(repr(v) for v in self.values[:5])})" if self.values else ""
        return f"school {self.school_urn}, {self.file}{where}: {self.rule} [{self.check}]{values}"


@dataclass
class ValidationReport:
    school_urn: str
    extract_date: str
    findings: list[Finding] = field(default_factory=list)
    data_docs: str | None = None
    staged_marks: int | None = None  # rows of marks.csv staged for the load step
    # small files whose findings stand from an earlier batch (same bytes): file name -> its extract date
    small_files_checked_on: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not any(f.severity == "critical" for f in self.findings)

    def critical(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "critical"]

    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def to_dict(self) -> dict:
        return {"school_urn": self.school_urn, "extract_date": self.extract_date, "passed": self.passed,
                "data_docs": self.data_docs, "staged_marks": self.staged_marks,
                "small_files_checked_on": self.small_files_checked_on,
                "findings": [asdict(f) | {"message": f.message()} for f in self.findings]}


class ParseError(ValueError):
    def __init__(self, finding: Finding):
        super().__init__(finding.message())
        self.finding = finding


def _parse_failure(school_urn: str, name: str):
    def fail(rule: str, lines: list[int] | None = None, values: list[str] | None = None) -> ParseError:
        return ParseError(Finding("critical", school_urn, name, rule, "parse", lines or [], values or [], len(lines or []) or 1))
    return fail


def _check_header(header: list[str], name: str, fail) -> None:
    expected = LAYOUT[name]
    if header and len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        raise fail("the file is not comma-separated (wrong delimiter)", [1], [header[0][:80]])
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    if missing or extra:
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unexpected column(s) {', '.join(extra)}"] if extra else [])
        raise fail("header does not match the export layout: " + "; ".join(parts), [1])


def _check_not_utf16(head: bytes, fail) -> None:
    if not head.strip():
        raise fail("the file is empty")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:4096]:
        raise fail("the file is not text in UTF-8 or Windows-1252 (looks like UTF-16); re-export as CSV UTF-8")


def _check_last_row_complete(last_line: str, line_number: int, name: str, fail) -> None:
    # A last line with no newline is how a truncated transfer looks: check its field count.
    if last_line.count(",") < len(LAYOUT[name]) - 1 or last_line.count('"') % 2:
        raise fail("the file ends mid-row (truncated transfer)", [line_number])


def read_export(path: Path, school_urn: str) -> pd.DataFrame:
    """Read one of the small export CSVs as strings; UTF-8 (with or without BOM) or Windows-1252; any line endings."""
    name = path.name
    fail = _parse_failure(school_urn, name)
    raw = path.read_bytes()
    _check_not_utf16(raw, fail)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            raise fail("the file is neither UTF-8 nor Windows-1252 text") from None
    import io

    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
                            skipinitialspace=False, engine="c")
    except pd.errors.ParserError as exc:
        line = _line_number(str(exc))
        raise fail(f"the file is not well-formed CSV ({exc})".strip(), [line] if line else []) from None
    frame.columns = [c.strip() for c in frame.columns]
    _check_header(list(frame.columns), name, fail)
    if frame.empty and name not in OPTIONAL_FILES:  # an optional file may legitimately have nothing to say
        raise fail("the file has a header but no rows", [1])
    if text.rstrip("\r\n") and not text.endswith(("\n", "\r")):
        _check_last_row_complete(text.rsplit("\n", 1)[-1], len(frame) + 1, name, fail)
    lengths = {column: frame[column].str.len() for column in frame.columns}
    long_columns = [column for column, length in lengths.items() if length.max() > MAX_FIELD_CHARS]
    if long_columns:
        rows = sorted({int(i) + 2 for c in long_columns for i in frame.index[lengths[c] > MAX_FIELD_CHARS]})
        raise fail(f"a field is longer than {MAX_FIELD_CHARS} characters", rows)
    for column in frame.columns:
        # Strip only columns that have padding: most exports have none, and stripping costs.
        if (frame[column].str.startswith(" ") | frame[column].str.endswith(" ")).any():
            frame[column] = frame[column].str.strip()
    return frame


def _line_number(message: str) -> int | None:
    match = re.search(r"line (\d+)", message or "")
    return int(match.group(1)) if match else None


def check_marks_file(path: Path, school_urn: str) -> str:
    """The checks on marks.csv that come before PostgreSQL parses it, reading it in chunks.
    Returns the file's encoding as PostgreSQL names it."""
    fail = _parse_failure(school_urn, path.name)
    decoder = codecs.getincrementaldecoder("utf-8")()
    encoding, lines, head, tail = "UTF8", 0, b"", b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            head = head or chunk
            lines += chunk.count(b"\n")
            tail = (tail + chunk)[-(MAX_FIELD_CHARS * 8):]
            if encoding == "UTF8":
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    encoding = "WIN1252"
    _check_not_utf16(head, fail)
    text_head = head.decode("utf-8" if encoding == "UTF8" else "cp1252", errors="replace").lstrip("\ufeff")
    header = next(csv.reader([text_head.splitlines()[0]]), [])
    _check_header([c.strip() for c in header], path.name, fail)
    if tail.rstrip(b"\r\n") and not tail.endswith((b"\n", b"\r")):
        _check_last_row_complete(tail.rsplit(b"\n", 1)[-1].decode("latin-1"), lines + 1, path.name, fail)
    return encoding


def _normalise(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    pupils, enrolments = frames["pupils.csv"], frames["enrolments.csv"]
    for name, columns in BOOLEAN_COLUMNS.items():
        if name not in frames:
            continue
        for column in columns:
            lowered = frames[name][column].str.lower()
            frames[name][column] = lowered.map(
                lambda v: None if v == "" else True if v in TRUE_WORDS else False if v in FALSE_WORDS else v
            ).astype(object)
    if "attainment.csv" in frames:
        results = frames["attainment.csv"]
        for column in ("attainment_8", "progress_8"):
            results[column] = results[column].where(results[column] != "", None)
        results["pupil_known"] = results["pupil_id"].isin(set(pupils["pupil_id"]))
    enrolments["leaving_date"] = enrolments["leaving_date"].where(enrolments["leaving_date"] != "", None)
    enrolments["pupil_known"] = enrolments["pupil_id"].isin(set(pupils["pupil_id"]))
    return frames


def _staged_name(batch: LandedBatch, kind: str) -> str:
    """The name of the batch's table in the validation schema: marks (marks.csv, checked) or completeness."""
    urn = re.sub(r"\W", "_", batch.school_urn)
    return f"{kind}_{urn}_{batch.extract_date:%Y%m%d}"


def _staged(batch: LandedBatch, kind: str) -> sql.Identifier:
    return sql.Identifier(STAGING_SCHEMA, _staged_name(batch, kind))


def staged_marks_table(batch: LandedBatch) -> sql.Identifier:
    return _staged(batch, "marks")


# session_date as a date when it is a real date written YYYY-MM-DD, else null (never an error):
# a day that overflows its month (30 February) comes back as another day of the month.
SESSION_DAY = """
    case when session_date ~ '^[12][0-9][0-9][0-9]-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' then
        case when extract(day from make_date(substr(session_date, 1, 4)::int, substr(session_date, 6, 2)::int, 1)
                                   + (substr(session_date, 9, 2)::int - 1)) = substr(session_date, 9, 2)::int
             then make_date(substr(session_date, 1, 4)::int, substr(session_date, 6, 2)::int, substr(session_date, 9, 2)::int)
        end
    end"""
COPY_FAILURES = {  # PostgreSQL's COPY error -> the rule the file broke
    psycopg.errors.StringDataRightTruncation: f"a field is longer than {MAX_FIELD_CHARS} characters",
    psycopg.errors.CharacterNotInRepertoire: "the file is neither UTF-8 nor Windows-1252 text",
    psycopg.errors.UntranslatableCharacter: "the file is neither UTF-8 nor Windows-1252 text",
}


def stage_marks(url: str, batch: LandedBatch, encoding: str, frames: dict[str, pd.DataFrame]) -> int:
    """COPY marks.csv into the validation schema with the columns the GX suite checks, and
    build the register-completeness table beside it. Returns the number of marks staged."""
    from .codes import code_table
    from .load import connect

    path = batch.file(MARKS_FILE)
    fail = _parse_failure(batch.school_urn, MARKS_FILE)
    marks, completeness = staged_marks_table(batch), _staged(batch, "completeness")
    text_columns = ", ".join(f"{c} varchar({MAX_FIELD_CHARS})" for c in MARK_COLUMNS)
    with connect(url) as conn:
        # A stage is rebuilt from the landing copy, so its commit need not wait for the disk (18 ms to 3 ms).
        conn.execute("set local synchronous_commit = off")
        conn.execute(f"create schema if not exists {STAGING_SCHEMA}")
        conn.execute(sql.SQL("drop table if exists {}, {}").format(marks, completeness))
        # line_number counts records from the header's line 1: a file's line unless a quoted field spans lines.
        conn.execute(f"create temp table incoming_marks (line_number bigint generated always as identity (start with 2),"
                     f" {text_columns}) on commit drop")
        try:
            with conn.cursor().copy(f"copy incoming_marks ({', '.join(MARK_COLUMNS)}) from stdin "
                                    f"(format csv, header true, encoding '{encoding}')") as copy:
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        copy.write(chunk)
        except psycopg.errors.DataError as exc:  # the file's fault; a lost connection is not, and propagates
            line = _line_number(exc.diag.context)
            rule = COPY_FAILURES.get(type(exc), f"the file is not well-formed CSV ({exc.diag.message_primary})")
            raise fail(rule, [line] if line else []) from None
        enrolments = frames["enrolments.csv"]
        conn.execute("create temp table batch_enrolments (pupil_id text, admission_date text, leaving_date text) on commit drop")
        with conn.cursor().copy("copy batch_enrolments from stdin") as copy:
            for row in enrolments[["pupil_id", "admission_date", "leaving_date"]].itertuples(index=False):
                copy.write_row(row)
        conn.execute("create temp table batch_forms (pupil_id text, form text) on commit drop")
        with conn.cursor().copy("copy batch_forms from stdin") as copy:
            for row in frames["pupils.csv"][["pupil_id", "form"]].itertuples(index=False):
                copy.write_row(row)
        conn.execute("analyze batch_enrolments, batch_forms")  # temporary tables get no statistics otherwise
        # Unlogged: a stage is rebuilt from the landing copy, so it needs no crash safety (load checks its count).
        staged = conn.execute(sql.SQL(f"""
            create unlogged table {{}} as
            with trimmed as materialized (
                select line_number, btrim(school_urn) as school_urn, btrim(pupil_id) as pupil_id,
                    btrim(session_date) as session_date, upper(btrim(session)) as session,
                    nullif(nullif(btrim(mark), ''), '-') as mark, nullif(btrim(minutes_late), '') as minutes_late,
                    nullif(comment, '') as comment
                from incoming_marks
            ),

            days as (
                -- Each distinct date written once: a batch has at most a few hundred, and working one out costs.
                select session_date, {SESSION_DAY} as session_day
                from (select distinct session_date from trimmed) as written
            ),

            on_roll as (
                -- A join, not a per-row subquery: lines whose date is inside one of the pupil's enrolments.
                select distinct trimmed.line_number
                from trimmed
                inner join batch_enrolments as e
                    on e.pupil_id = trimmed.pupil_id and e.admission_date <= trimmed.session_date
                    and trimmed.session_date <= coalesce(e.leaving_date, '9999-12-31')
            )

            select trimmed.line_number, school_urn, pupil_id, trimmed.session_date, session, mark, minutes_late, comment,
                session_day,
                case when session_day >= date '{CODES_2024_IN_FORCE_FROM}' then mark end as mark_from_2024,
                case when session_day < date '{CODES_2024_IN_FORCE_FROM}' then mark end as mark_before_2024,
                on_roll.line_number is not null as pupil_on_roll
            from trimmed
            left join days on days.session_date = trimmed.session_date
            left join on_roll on on_roll.line_number = trimmed.line_number
            """).format(marks)).rowcount
        if staged == 0:
            raise fail("the file has a header but no rows", [1])
        # Statistics on the columns the completeness query groups and joins by (a third cheaper than
        # all columns); without them it planned a merge join that took seconds, not 0.15 s.
        conn.execute(sql.SQL("analyze {} (session_date, session, pupil_id, mark)").format(marks))
        # A session is open when the school recorded a possible mark for it; every pupil
        # on roll that day should have a mark for it.
        possible = sorted({c.code for c in code_table() if c.counts_as_possible})
        conn.execute(sql.SQL("""
            create unlogged table {completeness} as
            with open_sessions as (
                select distinct session_date, session from {marks} where mark = any(%(possible)s)
            ),

            marked as (
                select distinct pupil_id, session_date, session from {marks} where mark is not null
            )

            select open_sessions.session_date, open_sessions.session, e.pupil_id, coalesce(forms.form, '') as form,
                marked.pupil_id is not null as has_mark
            from open_sessions
            inner join batch_enrolments as e
                on e.admission_date <= open_sessions.session_date
                and open_sessions.session_date <= coalesce(e.leaving_date, '9999-12-31')
            left join marked
                on marked.pupil_id = e.pupil_id and marked.session_date = open_sessions.session_date
                and marked.session = open_sessions.session
            left join (select distinct on (pupil_id) pupil_id, form from batch_forms) as forms
                on forms.pupil_id = e.pupil_id
            """).format(completeness=completeness, marks=marks), {"possible": possible})
    return staged


def missing_marks_listed(url: str, batch: LandedBatch) -> list[str]:
    from .load import connect

    with connect(url) as conn:
        rows = conn.execute(sql.SQL(
            "select session_date, session, pupil_id, form from {} where not has_mark "
            "order by session_date, session, form, pupil_id limit %s").format(_staged(batch, "completeness")),
            (MAX_LISTED_ROWS,)).fetchall()
    return [f"{d} {s} {p} ({form})" for d, s, p, form in rows]


def drop_staged(conn: psycopg.Connection, batch: LandedBatch) -> None:
    conn.execute(sql.SQL("drop table if exists {}, {}").format(staged_marks_table(batch), _staged(batch, "completeness")))


@lru_cache(maxsize=None)
def load_suite_document(name: str) -> dict:
    return json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def suite_parameters(school_urn: str, extract_date: dt.date) -> dict:
    earliest = dt.date(academic_year_start(extract_date - dt.timedelta(days=1)) - (HISTORY_ACADEMIC_YEARS - 1), 9, 1)
    return {
        "school_urn": [school_urn],
        "codes_from_2024_08_19": codes_valid_between(CODES_2024_IN_FORCE_FROM, dt.date.max),
        "codes_before_2024_08_19": codes_valid_between(dt.date.min, CODES_2024_IN_FORCE_FROM),
        "earliest_session_date": earliest.isoformat(),
        # An extract holds registers up to the day before it was taken.
        "latest_session_date": (extract_date - dt.timedelta(days=1)).isoformat(),
    }


STAGED_SUITES = {MARKS_FILE, COMPLETENESS}  # checked in the warehouse; the rest in pandas


class GxRunner:
    """Runs the suites as GX checkpoints; one per process, reused for every batch.

    Each suite runs with GX's BOOLEAN_ONLY result: whether each expectation passed. Counts and
    failing values (BASIC) cost GX a query per expectation, passing or not, and most nights pass
    everything, so only the expectations that failed run again, with the SUMMARY result: their
    counts, first failing values and (where rows can be named) lines. A night's batch of staged
    marks took 135 ms of GX against 179 ms with BASIC (20 schools). The reruns replace the
    failures' results in the batch's Data Docs, which are built once per batch, not after every
    checkpoint.
    """

    def __init__(self):
        import great_expectations as gx
        from great_expectations.core.expectation_suite import ExpectationSuite

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = {"globally": False, "metric_calculations": False}
        self.batch_results: list = []
        self.suites = {file_name: self.context.suites.add(ExpectationSuite(**load_suite_document(suite_name)))
                       for file_name, suite_name in SUITE_FOR_FILE.items()}
        self.staged_checkpoints: dict[str, tuple] = {}  # warehouse url -> the staged suites' checkpoint and table assets
        landing = self.context.data_sources.add_pandas("landing")
        self.checkpoints = {
            file_name: self._checkpoint(
                {file_name: landing.add_dataframe_asset(name=SUITE_FOR_FILE[file_name]).add_batch_definition_whole_dataframe("whole")},
                SUITE_FOR_FILE[file_name])
            for file_name in SUITE_FOR_FILE if file_name not in STAGED_SUITES
        }

    def _checkpoint(self, batch_definitions: dict, name: str):
        """A checkpoint validating each batch definition ({file name: definition}) with its file's suite."""
        definitions = [self.context.validation_definitions.add_or_update(self.gx.ValidationDefinition(
            name=f"{batch_definition.data_asset.datasource.name}_{batch_definition.data_asset.name}_validation",
            data=batch_definition, suite=self.suites[file_name]))
            for file_name, batch_definition in batch_definitions.items()]
        return self.context.checkpoints.add_or_update(self.gx.Checkpoint(
            name=f"{name}_checkpoint", validation_definitions=definitions,
            result_format={"result_format": "BOOLEAN_ONLY"}))

    def run(self, file_name: str, frame: pd.DataFrame, parameters: dict, school_urn: str) -> list[Finding]:
        """Validate a parsed file (pandas)."""
        return self._run(self.checkpoints[file_name], {"dataframe": frame}, parameters, school_urn,
                         {file_name: ([], None)})

    def run_staged(self, url: str, tables: dict[str, tuple[str, list[str] | None]], parameters: dict,
                   school_urn: str) -> list[Finding]:
        """Validate a batch's tables of the validation schema where they lie (GX's PostgreSQL
        datasource), in one checkpoint: ``tables`` maps a file name to its table and the
        ``index_columns`` that name a failing row (None: list no rows)."""
        from great_expectations.compatibility.sqlalchemy import quoted_name

        checkpoint, assets = self._staged_checkpoint(url, tables)
        for file_name, (table, _) in tables.items():
            # A quoted_name, as GX's validator makes the name it is created with: its column lookup expects one.
            assets[file_name].table_name = quoted_name(table, quote=False)
        return self._run(checkpoint, {}, parameters, school_urn,
                         {file_name: (index_columns, (url, table)) for file_name, (table, index_columns) in tables.items()})

    def _staged_checkpoint(self, url: str, tables: dict[str, tuple[str, list[str] | None]]):
        """The checkpoint of the staged suites in the warehouse at ``url`` and their table assets,
        made at its first batch. Each batch points the assets at its own tables: making the assets,
        definitions and checkpoint again for every batch was a third of a night's batch's Python calls."""
        if url not in self.staged_checkpoints:
            source = self.context.data_sources.add_or_update_postgres(
                f"warehouse_{len(self.staged_checkpoints)}",
                connection_string=url.replace("postgresql://", "postgresql+psycopg://", 1))
            assets = {file_name: source.add_table_asset(name=SUITE_FOR_FILE[file_name], table_name=table,
                                                        schema_name=STAGING_SCHEMA)
                      for file_name, (table, _) in tables.items()}
            checkpoint = self._checkpoint(
                {file_name: asset.add_batch_definition_whole_table("whole") for file_name, asset in assets.items()},
                f"staged_{len(self.staged_checkpoints)}")
            self.staged_checkpoints[url] = checkpoint, assets
        return self.staged_checkpoints[url]

    def _run(self, checkpoint, batch_parameters: dict, parameters: dict, school_urn: str,
             files: dict[str, tuple[list[str] | None, tuple[str, str] | None]]) -> list[Finding]:
        """Run a checkpoint; ``files`` maps each validated file to the columns naming a failing row
        (None: list no rows) and, for a staged table, its (url, table)."""
        result = checkpoint.run(batch_parameters=batch_parameters, expectation_parameters=parameters)
        self.batch_results += list(result.run_results)
        file_of_suite = {SUITE_FOR_FILE[file_name]: file_name for file_name in files}
        definition_of_suite = {definition.suite.name: definition for definition in checkpoint.validation_definitions}
        findings = []
        for key, validation in result.run_results.items():
            file_name = file_of_suite[validation.suite_name]
            index_columns, staged = files[file_name]
            if self._rerun_failures(definition_of_suite[validation.suite_name], batch_parameters, parameters,
                                    validation, index_columns, staged is not None):
                self.context.validation_results_store.set(key, validation)  # its Data Docs show the failures' details
            for outcome in validation.results:
                if outcome.success:
                    continue
                config = outcome.expectation_config
                res = outcome.result or {}
                lines = sorted(_line_of(i) for i in res.get("partial_unexpected_index_list") or [] if _line_of(i))
                if _gx_cannot_name_rows(config, staged is not None):
                    lines = _duplicate_lines(*staged, config.kwargs["column_list"])
                values = sorted({str(v) for v in (res.get("partial_unexpected_list") or []) if not pd.isna(v)})
                values += _exception_messages(outcome.exception_info)
                findings.append(Finding(
                    severity=str(getattr(config.severity, "value", config.severity) or "critical"),
                    school_urn=school_urn, file=file_name,
                    rule=(config.meta or {}).get("rule", config.type), check=config.type,
                    lines=lines[:MAX_LISTED_ROWS], values=values, count=int(res.get("unexpected_count") or len(lines) or 1),
                ))
        return findings

    def _rerun_failures(self, definition, batch_parameters: dict, parameters: dict, validation,
                        index_columns: list[str] | None, staged: bool) -> bool:
        """Run the expectations that failed again on the same batch with GX's SUMMARY result, naming
        their failing rows by ``index_columns`` where those name one, and put each result in place
        of the first run's in ``validation``. Returns whether any ran. A check that could not run
        (an exception) is not run again: its first result says why."""
        from great_expectations.core.expectation_suite import ExpectationSuite

        failed = [i for i, outcome in enumerate(validation.results)
                  if not outcome.success and not _exception_messages(outcome.exception_info)]
        if not failed:
            return False
        naming_rows = [i for i in failed if index_columns is not None
                       and not _gx_cannot_name_rows(validation.results[i].expectation_config, staged)]
        not_naming_rows = [i for i in failed if i not in naming_rows]
        batch = definition.batch_definition.get_batch(batch_parameters=batch_parameters)
        for positions, row_names in ((naming_rows, index_columns), (not_naming_rows, None)):
            if not positions:
                continue
            suite = ExpectationSuite(name=f"{definition.name}_failures", expectations=[
                copy.copy(validation.results[i].expectation_config.to_domain_obj()) for i in positions])
            again = batch.validate(suite, expectation_parameters=parameters, result_format={
                "result_format": "SUMMARY", "partial_unexpected_count": MAX_LISTED_ROWS}
                | ({"unexpected_index_column_names": row_names} if row_names is not None else {}))
            for i, rerun in zip(positions, again.results, strict=True):
                validation.results[i] = rerun
        return True

    def start_batch(self) -> None:
        self.batch_results = []

    def build_data_docs(self, folder: Path) -> Path:
        """Render this batch's validation results (only) as a Data Docs site in ``folder``."""
        from great_expectations.render.renderer.site_builder import SiteBuilder

        # The site builder the context would make from a site's config, made directly: adding and
        # deleting a site in the context's config for every batch serialised the whole config twice.
        views = {"module_name": __name__}
        SiteBuilder(
            data_context=self.context, site_name="batch_site",
            store_backend={"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
            site_index_builder={"class_name": "DefaultSiteIndexBuilder",
                                "view": views | {"class_name": "CompiledOnceIndexPageView"}},
            site_section_builders={"validations": {"view": views | {"class_name": "CompiledOncePageView"}}},
        ).build(resource_identifiers=self.batch_results)
        # Forget them: the site builder lists every stored result, so in a process that validates
        # school after school (airflow dags test) each batch's Data Docs would cost more than the last.
        store = self.context.validation_results_store
        for key in self.batch_results:
            store.remove_key(store.key_to_tuple(key))
        self.batch_results = []
        return folder / "index.html"


class _CompiledTemplates(jinja2.BytecodeCache):
    """Data Docs templates compiled once per process. GX makes a new jinja environment for every
    page it renders, so each batch re-compiled the same templates (most of its Data Docs time)."""

    def __init__(self):
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


COMPILED_TEMPLATES = _CompiledTemplates()
DATA_DOCS_VIEWS = {"CompiledOnceIndexPageView": "DefaultJinjaIndexPageView",
                   "CompiledOncePageView": "DefaultJinjaPageView"}


def __getattr__(name: str):
    """The Data Docs views that GX instantiates by name: its own, sharing COMPILED_TEMPLATES.
    Made on first use, so importing this module does not import GX."""
    if name not in DATA_DOCS_VIEWS:
        raise AttributeError(name)
    from great_expectations.render.view import view as gx_views

    class CompiledOnce(getattr(gx_views, DATA_DOCS_VIEWS[name])):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.env.bytecode_cache = COMPILED_TEMPLATES

    CompiledOnce.__name__ = CompiledOnce.__qualname__ = name
    globals()[name] = CompiledOnce
    return CompiledOnce


def _duplicate_lines(url: str, table: str, columns: list[str]) -> list[int]:
    """The lines of a staged table whose values of ``columns`` another line repeats."""
    from .load import connect

    with connect(url) as conn:
        return [row[0] for row in conn.execute(sql.SQL(
            "select line_number from (select line_number, count(*) over (partition by {}) as copies from {}) as counted"
            " where copies > 1 order by 1 limit {}").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(STAGING_SCHEMA, table),
                sql.Literal(MAX_LISTED_ROWS)))]


def _gx_cannot_name_rows(config, staged: bool) -> bool:
    """GX on SQL names no rows for a compound-uniqueness check (only a query, which PostgreSQL finds
    ambiguous): _duplicate_lines finds them instead."""
    return staged and config.type == "expect_compound_columns_to_be_unique"


def _line_of(index) -> int | None:
    """A failing row's line in its file: the staged line_number, or a pandas index (+1 header, +1 one-based)."""
    if isinstance(index, dict):
        return int(index["line_number"]) if index.get("line_number") is not None else None
    return int(index) + 2 if isinstance(index, int) else None


def _transfer_files(batch: LandedBatch, frames: dict[str, pd.DataFrame]) -> list[Finding]:
    """Parse the batch's Common Transfer Files into transfer frames; findings for any that fail."""
    from . import ctf
    from .codes import code_table

    years, marks, findings = [], [], []
    for path in sorted((batch.folder / "ctf").glob("*.xml")):
        try:
            content = ctf.parse_ctf(path, batch.school_urn)
        except ctf.CtfError as exc:
            findings.append(Finding("critical", batch.school_urn, f"ctf/{exc.file}", exc.problem, "ctf",
                                    values=[exc.element], count=1))
            continue
        invalid = [m for m in content.marks if m[5] and not any(
            c.code == m[5] and c.valid_on(dt.date.fromisoformat(m[3])) for c in code_table())]
        if invalid:
            findings.append(Finding("critical", batch.school_urn, f"ctf/{path.name}",
                                    "transferred marks use codes valid on their date", "ctf",
                                    values=[f"{m[1]} {m[3]} {m[4]} {m[5]!r}" for m in invalid[:5]], count=len(invalid)))
            continue
        years += content.years
        marks += content.marks
    if years:
        frames["transfer_attendance.csv"] = pd.DataFrame(years, columns=ctf.YEAR_COLUMNS)
        frames["transfer_marks.csv"] = pd.DataFrame(marks, columns=ctf.MARK_COLUMNS).replace({"mark": {"": None}})
    return findings


def _exception_messages(info: dict | None) -> list[str]:
    """GX reports a check that could not run as exception info, flat or keyed by metric."""
    if not info:
        return []
    entries = [info] if "raised_exception" in info else list(info.values())
    return [f"check could not run: {e.get('exception_message')}" for e in entries if isinstance(e, dict) and e.get("raised_exception")]


# The small files' last checks per school and file: a school re-sends its whole pupil list and
# enrolments every night, and most nights not a byte of them changes; checking them again would
# find the same, at a third of a batch's validation time (a GX run of a dozen expectations each).
SMALL_FILE_CHECKS_DDL = f"""
create table if not exists {STAGING_SCHEMA}.small_file_checks (
    school_urn   text not null,
    file_name    text not null,
    checks_key   text not null,  -- sha256 of everything the file's checks depend on
    extract_date date not null,  -- the batch they were run on
    findings     jsonb not null,
    primary key (school_urn, file_name)
)"""
CHECKED_AGAINST_PUPILS = "pupils.csv"  # enrolments and results name pupils that must be in it


def _parameters_used(document) -> set[str]:
    """The suite parameters a suite document refers to ({"$PARAMETER": name})."""
    if isinstance(document, dict):
        return ({document["$PARAMETER"]} if "$PARAMETER" in document else set()).union(
            *(_parameters_used(v) for v in document.values()))
    if isinstance(document, list):
        return set().union(*(_parameters_used(v) for v in document))
    return set()


@lru_cache(maxsize=1)
def _checking_code_digest() -> bytes:
    """The code every check depends on: this module (parsing and normalising) and GX's version."""
    from importlib.metadata import version

    return hashlib.sha256(Path(__file__).read_bytes() + version("great_expectations").encode()).digest()


def small_file_key(batch: LandedBatch, name: str, parameters: dict) -> str:
    """What a small file's checks depend on: its bytes (and the pupil list's, which the other files
    are checked against), its suite and the parameters that uses, and the checking code."""
    suite = load_suite_document(SUITE_FOR_FILE[name])
    used = {p: parameters[p] for p in sorted(_parameters_used(suite))}
    digest = hashlib.sha256(_checking_code_digest())
    for part in (name, batch.file(name).read_bytes(), batch.file(CHECKED_AGAINST_PUPILS).read_bytes(),
                 json.dumps(suite, sort_keys=True), json.dumps(used)):
        digest.update(hashlib.sha256(part if isinstance(part, bytes) else part.encode()).digest())
    return digest.hexdigest()


def small_file_findings(url: str, batch: LandedBatch, frames: dict[str, pd.DataFrame], parameters: dict,
                        runner: "GxRunner") -> tuple[list[Finding], dict[str, str]]:
    """The GX findings on the batch's small files, and for each file that is the same as one the
    school sent to a batch already checked, that batch's extract date: its findings stand."""
    from .load import connect

    keys = {name: small_file_key(batch, name, parameters) for name in frames if name in SUITE_FOR_FILE}
    with connect(url) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext('trust_attendance.small_file_checks'))")
        conn.execute(f"create schema if not exists {STAGING_SCHEMA}")
        conn.execute(SMALL_FILE_CHECKS_DDL)
        checked = {name: (extract_date, findings) for name, key, extract_date, findings in conn.execute(
            f"select file_name, checks_key, extract_date, findings from {STAGING_SCHEMA}.small_file_checks "
            "where school_urn = %s", (batch.school_urn,)) if keys.get(name) == key}
    findings, checked_on, checked_now = [], {}, []
    for name in keys:
        if name in checked:
            checked_on[name] = checked[name][0].isoformat()
            findings += [Finding(**finding) for finding in checked[name][1]]
            log.info("school %s: %s unchanged since the batch of %s; its checks stand (%d finding(s)), not run again",
                     batch.school_urn, name, checked_on[name], len(checked[name][1]))
        else:
            file_findings = runner.run(name, frames[name], parameters, batch.school_urn)
            findings += file_findings
            checked_now.append((batch.school_urn, name, keys[name], batch.extract_date,
                                json.dumps([asdict(f) for f in file_findings])))
    if checked_now:
        with connect(url) as conn:
            conn.cursor().executemany(f"""
                insert into {STAGING_SCHEMA}.small_file_checks (school_urn, file_name, checks_key, extract_date, findings)
                values (%s, %s, %s, %s, %s)
                on conflict (school_urn, file_name) do update set checks_key = excluded.checks_key,
                    extract_date = excluded.extract_date, findings = excluded.findings""", checked_now)
    return findings, checked_on


@lru_cache(maxsize=1)
def _runner() -> GxRunner:
    return GxRunner()


def warm_up() -> None:
    """Make this process's GX ready for batches: its runner made, and a made-up one-row pupil
    file checked (failing, so the re-run of failures is exercised too) and rendered as Data Docs
    in a folder then deleted, which compiles the templates. No warehouse, nothing kept. A
    process that forks one task process per school (``trust_attendance.preload``) does this
    once rather than in every task."""
    import tempfile

    runner = _runner()
    runner.start_batch()
    made_up = pd.DataFrame({column: ["x"] for column in LAYOUT["pupils.csv"]})
    runner.run("pupils.csv", made_up, suite_parameters("000000", dt.date.today()), "000000")
    with tempfile.TemporaryDirectory() as folder:
        runner.build_data_docs(Path(folder))
    # GX's validation made a (disabled) tqdm bar, which started tqdm's monitor thread. Stopped (each
    # bar class keeps its own), so the process forks with one thread: a lock a thread held at a
    # fork would stay held in the child.
    from tqdm import tqdm

    classes = [tqdm]
    while classes:
        bar_class = classes.pop()
        classes += bar_class.__subclasses__()
        if bar_class.__dict__.get("monitor") is not None:
            bar_class.monitor.exit()
            bar_class.monitor = None


def data_docs_dir(extract_date: dt.date, school_urn: str) -> Path:
    return var_dir() / "data_docs" / extract_date.isoformat() / school_urn


def validate_batch(batch: LandedBatch, url: str) -> tuple[ValidationReport, dict[str, pd.DataFrame]]:
    """Parse and validate one landed batch, staging its marks in the warehouse at ``url``.
    Returns the report and the parsed small files (the marks stay in the validation schema)."""
    report, frames = stage_batch(batch, url)
    if report.staged_marks is not None:  # parsed and staged
        check_batch(batch, url, report, frames)
    return report, frames


def stage_batch(batch: LandedBatch, url: str) -> tuple[ValidationReport, dict[str, pd.DataFrame]]:
    """Validation's first layer: parse the batch's files and stage its marks in the warehouse.
    Returns the report (with the staged marks' count, or the parse failure and no frames) and the
    parsed small files, transfer files included. ``check_batch`` runs the GX suites on them."""
    report = ValidationReport(batch.school_urn, batch.extract_date.isoformat())
    try:
        frames = {name: read_export(batch.file(name), batch.school_urn) for name in LAYOUT
                  if name != MARKS_FILE and (name not in OPTIONAL_FILES or batch.file(name).exists())}
        encoding = check_marks_file(batch.file(MARKS_FILE), batch.school_urn)
        frames = _normalise(frames)
        report.staged_marks = stage_marks(url, batch, encoding, frames)
    except ParseError as exc:
        report.findings.append(exc.finding)
        return report, {}
    report.findings += _transfer_files(batch, frames)
    return report, frames


def check_batch(batch: LandedBatch, url: str, report: ValidationReport, frames: dict[str, pd.DataFrame]) -> None:
    """Validation's second layer: the GX suites on a staged batch, their findings added to
    ``report``, and the batch's Data Docs."""
    runner = _runner()
    runner.start_batch()
    parameters = suite_parameters(batch.school_urn, batch.extract_date)
    findings, report.small_files_checked_on = small_file_findings(url, batch, frames, parameters, runner)
    report.findings += findings
    staged = {MARKS_FILE: (_staged_name(batch, "marks"), ["line_number"]),
              COMPLETENESS: (_staged_name(batch, "completeness"), None)}
    for finding in runner.run_staged(url, staged, parameters, batch.school_urn):
        if finding.file == COMPLETENESS:
            finding.values, finding.lines = missing_marks_listed(url, batch), []
        report.findings.append(finding)
    report.data_docs = str(runner.build_data_docs(data_docs_dir(batch.extract_date, batch.school_urn)))
