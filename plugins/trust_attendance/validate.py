"""Proving a landed batch is sound before it reaches the warehouse.

Two layers. Parsing turns each CSV into a typed frame and refuses files that
cannot be read at all (wrong encoding, missing or unexpected columns, ragged
rows). Then Great Expectations runs the suites in ``expectations/`` as real
checkpoints, with the valid code sets read from the dbt code seed. Every
failure names the school, file, line and rule; ``critical`` failures
quarantine the batch, ``warning`` ones load it and go in the exception report.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .school_calendar import academic_year_start
from .codes import CODES_2024_IN_FORCE_FROM, codes_valid_between
from .export_layout import EXPORT_FILES, OPTIONAL_FILES
from .paths import EXPECTATIONS_DIR, var_dir
from .sources import LandedBatch

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

LAYOUT = EXPORT_FILES
SUITE_FOR_FILE = {"marks.csv": "register_marks", "pupils.csv": "pupils", "enrolments.csv": "enrolments",
                  "attainment.csv": "attainment", "register completeness": "register_completeness"}
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

    @property
    def passed(self) -> bool:
        return not any(f.severity == "critical" for f in self.findings)

    def critical(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "critical"]

    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def to_dict(self) -> dict:
        return {"school_urn": self.school_urn, "extract_date": self.extract_date, "passed": self.passed,
                "data_docs": self.data_docs, "findings": [asdict(f) | {"message": f.message()} for f in self.findings]}


class ParseError(ValueError):
    def __init__(self, finding: Finding):
        super().__init__(finding.message())
        self.finding = finding


def read_export(path: Path, school_urn: str) -> pd.DataFrame:
    """Read one export CSV as strings; UTF-8 (with or without BOM) or Windows-1252; any line endings."""
    name = path.name
    expected = LAYOUT[name]

    def fail(rule: str, lines: list[int] | None = None, values: list[str] | None = None) -> ParseError:
        return ParseError(Finding("critical", school_urn, name, rule, "parse", lines or [], values or [], len(lines or []) or 1))

    raw = path.read_bytes()
    if not raw.strip():
        raise fail("the file is empty")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        raise fail("the file is not text in UTF-8 or Windows-1252 (looks like UTF-16); re-export as CSV UTF-8")
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
        line = _line_from_parser_error(str(exc))
        raise fail(f"the file is not well-formed CSV ({exc})".strip(), [line] if line else []) from None
    header = [c.strip() for c in frame.columns]
    frame.columns = header
    if header and len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        raise fail("the file is not comma-separated (wrong delimiter)", [1], [header[0][:80]])
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    if missing or extra:
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unexpected column(s) {', '.join(extra)}"] if extra else [])
        raise fail("header does not match the export layout: " + "; ".join(parts), [1])
    if frame.empty and name not in OPTIONAL_FILES:  # an optional file may legitimately have nothing to say
        raise fail("the file has a header but no rows", [1])
    if text.rstrip("\r\n") and not text.endswith(("\n", "\r")):
        # A last line with no newline is how a truncated transfer looks: check its field count.
        last = text.rsplit("\n", 1)[-1]
        if last.count(",") < len(expected) - 1 or last.count('"') % 2:
            raise fail("the file ends mid-row (truncated transfer)", [len(frame) + 1])
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


def _line_from_parser_error(message: str) -> int | None:
    import re

    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


def _normalise(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    marks, pupils, enrolments = frames["marks.csv"], frames["pupils.csv"], frames["enrolments.csv"]
    marks["session"] = marks["session"].str.upper()
    # Typed copy of the date for range checks (unparseable dates become null; the regex check reports them).
    marks["session_day"] = pd.to_datetime(marks["session_date"], format="%Y-%m-%d", errors="coerce").dt.date
    marks["mark"] = marks["mark"].where(~marks["mark"].isin(MISSING_MARKS), None)
    marks["minutes_late"] = marks["minutes_late"].where(marks["minutes_late"] != "", None)
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
    marks["pupil_on_roll"] = _marks_within_enrolment(marks, enrolments)
    return frames


def _marks_within_enrolment(marks: pd.DataFrame, enrolments: pd.DataFrame) -> pd.Series:
    """True where the mark's date lies in [admission, leaving] of one of the pupil's enrolments."""
    spans = enrolments[["pupil_id", "admission_date", "leaving_date"]].copy()
    spans["leaving_date"] = spans["leaving_date"].fillna("9999-12-31")
    keyed = marks[["pupil_id", "session_date"]].reset_index()
    joined = keyed.merge(spans, on="pupil_id", how="left")
    inside = (joined["admission_date"] <= joined["session_date"]) & (joined["session_date"] <= joined["leaving_date"])
    on_roll = inside.groupby(joined["index"]).any()
    return on_roll.reindex(marks.index, fill_value=False)


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


class GxRunner:
    """Runs the suites as GX checkpoints; one per process, reused for every batch."""

    def __init__(self):
        import great_expectations as gx
        from great_expectations.core.expectation_suite import ExpectationSuite

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = {"globally": False, "metric_calculations": False}
        self.batch_results: list = []
        source = self.context.data_sources.add_pandas("landing")
        self.checkpoints = {}
        for file_name, suite_name in SUITE_FOR_FILE.items():
            asset = source.add_dataframe_asset(name=suite_name)
            batch = asset.add_batch_definition_whole_dataframe(f"{suite_name}_batch")
            suite = self.context.suites.add(ExpectationSuite(**load_suite_document(suite_name)))
            definition = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{suite_name}_validation", data=batch, suite=suite)
            )
            # Two checkpoints over the same validation: a quick pass/fail, and the full detail
            # (every failing row's index) only for a suite that failed. Collecting the detail
            # costs about 40 % of GX's time, and nearly every batch passes.
            # Data Docs are built once per batch (build_data_docs), not after every checkpoint.
            self.checkpoints[file_name] = {
                detail: self.context.checkpoints.add(gx.Checkpoint(
                    name=f"{suite_name}_{detail.lower()}_checkpoint",
                    validation_definitions=[definition],
                    result_format={"result_format": detail, "unexpected_index_column_names": []},
                ))
                for detail in ("BOOLEAN_ONLY", "COMPLETE")
            }

    def run(self, file_name: str, frame: pd.DataFrame, parameters: dict, school_urn: str) -> list[Finding]:
        checkpoints = self.checkpoints[file_name]
        result = checkpoints["BOOLEAN_ONLY"].run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters)
        if not result.success:
            result = checkpoints["COMPLETE"].run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters)
        self.batch_results += list(result.run_results)
        findings = []
        for validation in result.run_results.values():
            for outcome in validation.results:
                if outcome.success:
                    continue
                config = outcome.expectation_config
                res = outcome.result or {}
                indexes = res.get("unexpected_index_list") or []
                lines = sorted(int(i) + 2 for i in indexes if isinstance(i, (int,)))  # +1 header, +1 one-based
                values = sorted({str(v) for v in (res.get("partial_unexpected_list") or []) if not pd.isna(v)})
                values += _exception_messages(outcome.exception_info)
                findings.append(Finding(
                    severity=str(getattr(config.severity, "value", config.severity) or "critical"),
                    school_urn=school_urn, file=file_name,
                    rule=(config.meta or {}).get("rule", config.type), check=config.type,
                    lines=lines[:MAX_LISTED_ROWS], values=values, count=int(res.get("unexpected_count") or len(lines) or 1),
                ))
        return findings

    def start_batch(self) -> None:
        self.batch_results = []

    def build_data_docs(self, folder: Path) -> Path:
        """Render this batch's validation results (only) as a Data Docs site in ``folder``."""
        if "batch_site" in (self.context.get_site_names() or []):
            self.context.delete_data_docs_site("batch_site")
        self.context.add_data_docs_site(site_name="batch_site", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        self.context.build_data_docs(site_names=["batch_site"], resource_identifiers=self.batch_results)
        return folder / "index.html"


def register_completeness(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per pupil on roll per open session, with whether the register has a mark for it."""
    from .codes import code_table

    marks, enrolments, pupils = frames["marks.csv"], frames["enrolments.csv"], frames["pupils.csv"]
    possible = {c.code for c in code_table() if c.counts_as_possible}
    open_sessions = marks.loc[marks["mark"].isin(possible), ["session_date", "session"]].drop_duplicates()
    spans = enrolments[["pupil_id", "admission_date", "leaving_date"]].fillna({"leaving_date": "9999-12-31"})
    expected = open_sessions.merge(spans, how="cross")
    expected = expected[(expected["admission_date"] <= expected["session_date"])
                        & (expected["session_date"] <= expected["leaving_date"])]
    recorded = marks.loc[marks["mark"].notna(), ["pupil_id", "session_date", "session"]].assign(has_mark=True)
    result = expected.merge(recorded.drop_duplicates(), on=["pupil_id", "session_date", "session"], how="left")
    result["has_mark"] = result["has_mark"].fillna(False).astype(bool)
    forms = pupils.drop_duplicates("pupil_id").set_index("pupil_id")["form"]
    result["form"] = result["pupil_id"].map(forms).fillna("")
    return result.sort_values(["session_date", "session", "form", "pupil_id"]).reset_index(drop=True)


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


@lru_cache(maxsize=1)
def _runner() -> GxRunner:
    return GxRunner()


def data_docs_dir(extract_date: dt.date, school_urn: str) -> Path:
    return var_dir() / "data_docs" / extract_date.isoformat() / school_urn


def validate_batch(batch: LandedBatch) -> tuple[ValidationReport, dict[str, pd.DataFrame]]:
    """Parse and validate one landed batch. Returns the report and the parsed frames."""
    report = ValidationReport(batch.school_urn, batch.extract_date.isoformat())
    try:
        frames = {name: read_export(batch.file(name), batch.school_urn) for name in LAYOUT
                  if name not in OPTIONAL_FILES or batch.file(name).exists()}
    except ParseError as exc:
        report.findings.append(exc.finding)
        return report, {}
    frames = _normalise(frames)
    report.findings += _transfer_files(batch, frames)
    completeness = register_completeness(frames)
    docs = data_docs_dir(batch.extract_date, batch.school_urn)
    runner = _runner()
    runner.start_batch()
    parameters = suite_parameters(batch.school_urn, batch.extract_date)
    for file_name, frame in frames.items():
        if file_name in SUITE_FOR_FILE:
            report.findings += runner.run(file_name, frame, parameters, batch.school_urn)
    for finding in runner.run("register completeness", completeness, parameters, batch.school_urn):
        missing = completeness[~completeness["has_mark"]]
        finding.values = [f"{r.session_date} {r.session} {r.pupil_id} ({r.form})"
                          for r in missing.head(MAX_LISTED_ROWS).itertuples()]
        finding.lines = []
        report.findings.append(finding)
    report.data_docs = str(runner.build_data_docs(docs))
    return report, frames
