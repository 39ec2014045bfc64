"""What people receive: watch lists, exception emails and the data team's alerts.

Every output is per school and is built from queries filtered to that school,
so no output ever carries another school's pupils. Sessions missed are shown
as days, because the trust's charter reports days, not percentages, to parents.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import logging
import multiprocessing
import os
import smtplib
import ssl
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
import xlsxwriter

from .config import School, TrustConfig, hide_in_logs, load_trust_config
from .load import connect
from .warehouse import engine, warehouse_url

log = logging.getLogger(__name__)

SESSIONS_PER_DAY = 2
XLSX_MIME = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")

# The watch lists (charter, weekly actions), as (sheet name, boolean column of school_pupils()).
WATCH_LISTS = [
    ("Risk of PA", "is_at_risk_of_persistent_absence"),
    ("Risk of SA", "is_at_risk_of_severe_absence"),
    ("PA", "is_persistent_absence"),
    ("SA", "is_severe_absence"),
    ("Persistent lates", "has_persistent_lates"),
    ("10 in 10 weeks", "has_reached_10_unauthorised_in_10_weeks"),
    ("Continuous absence", "is_continuous_absence_day_1"),
    ("Unresolved N", "has_unresolved_n_codes"),
    ("New this week", "is_new_on_watch_list"),
]

PUPILS_SQL = """
select
    pupils.legal_forename || ' ' || pupils.legal_surname as pupil_name,
    pupils.upn,
    pupils.form_group as form,
    pupils.year_group,
    attendance.is_pupil_premium as pupil_premium,
    attendance.sen_provision,
    attendance.is_english_additional_language as eal,
    attendance.is_looked_after as looked_after,
    watch.*
from marts.fct_watch_list as watch
join marts.dim_pupils as pupils on pupils.pupil_key = watch.pupil_key
join marts.fct_pupil_attendance as attendance
    on attendance.pupil_key = watch.pupil_key
    and attendance.academic_year = (select max(academic_year) from marts.fct_pupil_attendance)
where watch.school_urn = :school_urn
order by watch.attendance_rate, pupils.legal_surname, pupils.legal_forename, watch.pupil_key  -- the key: the same order every night
"""
SHOWN_COLUMNS = [
    "pupil_name", "upn", "form", "year_group", "pupil_premium", "sen_provision", "eal", "looked_after",
    "attendance_percent", "days_missed", "unauthorised_days", "late_sessions",
    "unauthorised_sessions_10_school_weeks", "consecutive_school_days_absent", "unresolved_n_codes", "stage",
    "suggested_action",
]
RAG = {"red": "#F4B6B6", "amber": "#FFE29A", "green": "#C6EFCE"}  # the attendance percent's fill
# A spreadsheet opening a CSV runs a cell that begins with one of these as a formula (CWE-1236).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def outbox_folder(config: TrustConfig, run_date: dt.date, school_urn: str) -> Path:
    """``OUTBOX_PATTERN`` (default ``{outbox}/{date}/{urn}``) under the trust's outbox."""
    pattern = os.environ.get("OUTBOX_PATTERN", "{outbox}/{date}/{urn}")
    return Path(pattern.format(outbox=config.outbox_dir, date=run_date.isoformat(), urn=school_urn))


def school_pupils(conn, school_urn: str) -> pd.DataFrame:
    """This school's pupils with their watch-list criteria, as the lists show them."""
    frame = pd.read_sql(sa.text(PUPILS_SQL), conn, params={"school_urn": school_urn})
    frame["stage"] = frame["graduated_response_stage"]
    frame["has_unresolved_n_codes"] = frame["unresolved_n_codes"] > 0
    frame["attendance_percent"] = (frame["attendance_rate"].astype(float) * 100).round(1)
    frame["days_missed"] = frame["absence_sessions"] / SESSIONS_PER_DAY
    frame["unauthorised_days"] = frame["unauthorised_absence_sessions"] / SESSIONS_PER_DAY
    return frame


def rag(attendance_percent: float) -> str:
    """Red below 90 % (persistent absence), amber below 95 %, green otherwise."""
    if attendance_percent < 90:
        return "red"
    return "amber" if attendance_percent < 95 else "green"


def _on_list(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].fillna(False).astype(bool)


@dataclass
class WatchListFiles:
    school_urn: str
    workbook: Path
    csv: Path
    counts: dict[str, int]


def write_watch_list(frame: pd.DataFrame, school: School, folder: Path, run_date: dt.date) -> WatchListFiles:
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"watch_lists_{school.urn}_{run_date.isoformat()}"
    xlsx_path, csv_path = folder / f"{stem}.xlsx", folder / f"{stem}.csv"
    # XlsxWriter, not openpyxl: a large trust's lists are about a million cells a night, and with
    # openpyxl's streamed sheets the whole export took 1.4-1.6 times as long (benchmarks/RESULTS.md).
    workbook = _workbook(xlsx_path)
    bold = workbook.add_format({"bold": True})
    rag_fills = {colour: workbook.add_format({"bg_color": fill}) for colour, fill in RAG.items()}
    counts = {}
    memberships = pd.Series([[] for _ in range(len(frame))], index=frame.index)
    header = [c.replace("_", " ").capitalize() for c in SHOWN_COLUMNS]
    percent_col = SHOWN_COLUMNS.index("attendance_percent")
    # Python values, blanks as None (which XlsxWriter leaves empty), converted once for every sheet.
    shown = frame[SHOWN_COLUMNS]
    shown = shown.astype(object).where(shown.notna(), None)
    for sheet_name, column in WATCH_LISTS:
        listed = shown[_on_list(frame, column)]
        counts[sheet_name] = len(listed)
        for i in listed.index:
            memberships[i] = memberships[i] + [sheet_name]
        sheet = workbook.add_worksheet(sheet_name)
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, len(listed), len(SHOWN_COLUMNS) - 1)
        for n, column_name in enumerate(SHOWN_COLUMNS):
            sheet.set_column(n, n, 40 if column_name == "suggested_action" else max(10, len(column_name) + 2))
        sheet.write_row(0, 0, header, bold)
        for row_number, row in enumerate(listed.itertuples(index=False), start=1):
            sheet.write_row(row_number, 0, row)
            if row[percent_col] is not None:
                sheet.write(row_number, percent_col, row[percent_col], rag_fills[rag(row[percent_col])])
    workbook.close()
    listed = frame.assign(lists=memberships.map("; ".join))
    listed = listed[listed["lists"] != ""]
    listed[["lists", *SHOWN_COLUMNS]].map(_as_spreadsheet_text).to_csv(csv_path, index=False, quoting=csv.QUOTE_MINIMAL)
    return WatchListFiles(school.urn, xlsx_path, csv_path, counts)


def _as_spreadsheet_text(value):
    """Text that a spreadsheet would run as a formula, with a leading apostrophe (OWASP's advice).

    The CSV is for the school's staff and their spreadsheets; a program that needs the MIS's
    values as they are reads the marts (fct_watch_list, names from dim_pupils). The workbook
    needs no such mark: its cells are typed, and text is written as text (_workbook).
    """
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) else value


def _workbook(path: Path) -> xlsxwriter.Workbook:
    # Text is written as text: a name or comment from the MIS that begins "=" or "http" is not
    # made a formula or a link, as XlsxWriter's defaults would.
    return xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_urls": False})


def export_watch_lists(run_date: dt.date, config: TrustConfig | None = None) -> dict[str, WatchListFiles]:
    """Per-school workbooks and CSVs, and the trust summary (counts only, no names).

    The lists are read school by school here while writing the workbooks, most of the time
    (about 0.1 s a school), is shared between one process per core.
    """
    config = config or load_trust_config()
    workers = max(1, min(len(config.schools), os.cpu_count() or 1))
    files, in_flight = {}, deque()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as writers:
        writers.submit(int).result()  # fork the writers now, before this process opens a connection
        with engine().connect() as conn:
            for school in config.schools:
                in_flight.append(writers.submit(write_watch_list, school_pupils(conn, school.urn), school,
                                                outbox_folder(config, run_date, school.urn), run_date))
                while len(in_flight) > 2 * workers:  # a few schools' lists in memory, not the trust's
                    written = in_flight.popleft().result()
                    files[written.school_urn] = written
        for written in (future.result() for future in in_flight):
            files[written.school_urn] = written
    write_trust_summary(config, run_date, files)
    return files


def write_trust_summary(config: TrustConfig, run_date: dt.date, files: dict[str, WatchListFiles]) -> Path:
    path = Path(config.outbox_dir) / run_date.isoformat() / f"trust_watch_list_summary_{run_date.isoformat()}.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = _workbook(path)
    sheet = workbook.add_worksheet("Watch lists by school")
    sheet.write_row(0, 0, ["URN", "School", *[name for name, _ in WATCH_LISTS]], workbook.add_format({"bold": True}))
    for row_number, school in enumerate(config.schools, start=1):
        sheet.write_row(row_number, 0, [school.urn, school.name, *[files[school.urn].counts[name] for name, _ in WATCH_LISTS]])
    sheet.freeze_panes(1, 2)
    workbook.close()
    return path


# -- email -------------------------------------------------------------------

def smtp_settings() -> dict | None:
    """SMTP from the environment (SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_STARTTLS,
    SMTP_SSL, SMTP_FROM, SMTP_MAX_PER_MINUTE), else the Airflow connection ``trust_smtp``; None if neither."""
    host = os.environ.get("SMTP_HOST")
    if host:
        hide_in_logs(os.environ.get("SMTP_PASSWORD"))
        return {
            "host": host, "port": int(os.environ.get("SMTP_PORT", "25")),
            "user": os.environ.get("SMTP_USER"), "password": os.environ.get("SMTP_PASSWORD"),
            "starttls": os.environ.get("SMTP_STARTTLS", "false").lower() == "true",
            "ssl": os.environ.get("SMTP_SSL", "false").lower() == "true",
            "sender": os.environ.get("SMTP_FROM", "attendance-pipeline@localhost"),
            "max_per_minute": int(os.environ.get("SMTP_MAX_PER_MINUTE") or 0) or None,
        }
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection("trust_smtp")
    except Exception:  # noqa: BLE001 - no Airflow, or no such connection
        return None
    extra = conn.extra_dejson or {}
    return {"host": conn.host, "port": conn.port or 25, "user": conn.login, "password": conn.password,
            "starttls": bool(extra.get("starttls")), "ssl": bool(extra.get("ssl")),
            "sender": extra.get("from", "attendance-pipeline@localhost"),
            "max_per_minute": int(extra.get("max_per_minute") or 0) or None}


class SmtpSession:
    """One SMTP session for a run's emails, opened at the first and closed at the end.

    A trust's relay (Microsoft 365, Google Workspace) wants STARTTLS and a login: a connection
    per email paid the TCP and TLS handshakes and the login once a school. If the relay has
    closed the session since the last email (an idle timeout, or a 421 at a limit of messages
    per connection), or the connection is lost during the email, it is sent on a new one. With
    ``max_per_minute`` it sends no more than that in any minute: Exchange Online takes 30 a
    minute from a mailbox and refuses the rest.
    """

    clock, sleep = staticmethod(time.monotonic), staticmethod(time.sleep)

    def __init__(self, settings: dict | None):
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._sent_at: deque[float] = deque()  # when each email went; the rate looks back a minute

    def __enter__(self) -> "SmtpSession":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def send(self, message: EmailMessage) -> None:
        self._keep_to_the_rate()
        if self._smtp is not None:
            try:
                self._smtp.send_message(message)
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException) as error:
                if isinstance(error, smtplib.SMTPResponseException) and error.smtp_code != 421:
                    raise  # refused for a reason of its own, which a new session would not change
                log.info("the SMTP relay closed the session (%s); opening another", error)
                self.close()
        if self._smtp is None:
            self._smtp = self._open()
            self._smtp.send_message(message)
        self._sent_at.append(self.clock())

    def _keep_to_the_rate(self) -> None:
        limit = self.settings.get("max_per_minute")
        while limit and len(self._sent_at) >= limit:
            wait = self._sent_at[0] + 60 - self.clock()
            if wait > 0:
                log.info("%d emails sent in the last minute (SMTP_MAX_PER_MINUTE): waiting %.0f s", limit, wait)
                self.sleep(wait)
            self._sent_at.popleft()

    def _open(self) -> smtplib.SMTP:
        settings = self.settings
        smtp_class = smtplib.SMTP_SSL if settings["ssl"] else smtplib.SMTP
        smtp = smtp_class(settings["host"], settings["port"], timeout=30)
        try:
            if settings["starttls"]:
                smtp.starttls(context=ssl.create_default_context())
            if settings["user"]:
                smtp.login(settings["user"], settings["password"] or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):  # already gone: nothing to say goodbye to
            self._smtp.close()
        self._smtp = None


def deliver(message: EmailMessage, settings: dict) -> None:
    with SmtpSession(settings) as session:
        session.send(message)


def send_email(to: list[str], subject: str, text: str) -> bool:
    settings = smtp_settings()
    if not settings or not to:
        log.warning("email not sent (no SMTP settings or no recipients): %s", subject)
        return False
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings["sender"], ", ".join(to), subject
    message.set_content(text)
    deliver(message, settings)
    return True


def notify_failure(context: dict) -> None:
    """Airflow on_failure_callback: tell the data team which task failed and why."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    map_index = getattr(ti, "map_index", -1)
    mapped = getattr(ti, "rendered_map_index", None) or map_index  # a school's URN, where the task names it
    error = context.get("exception")
    subject = f"[attendance pipeline] {dag_id}.{task_id}{f'[{mapped}]' if map_index not in (-1, None) else ''} failed"
    text = f"Task {task_id} of {dag_id} failed for run {context.get('run_id')}.\n\nError: {error}\n"
    log.error("%s: %s", subject, error)
    try:
        send_email(list(load_trust_config().data_team_contacts), subject, text)
    except Exception:  # noqa: BLE001 - a failing alert must not hide the original failure
        log.exception("could not send the failure email")


LEDGER_DDL = """
create schema if not exists publish;
create table if not exists publish.sent_emails (
    school_urn  text not null,
    run_date    date not null,
    kind        text not null,
    message_id  text not null,
    recipients  text not null,
    status      text not null check (status in ('sending', 'sent', 'nothing_to_report')),
    updated_at  timestamptz not null default now(),
    primary key (school_urn, run_date, kind)
);
"""


@dataclass
class ExceptionReport:
    school: School
    run_date: dt.date
    quarantine: list[str]
    missing_marks: pd.DataFrame      # register, session, missing
    newly: pd.DataFrame              # pupils newly reaching a threshold
    unresolved_n: pd.DataFrame       # pupils with N codes older than 5 school days
    last_open_day: dt.date | None
    data_docs: str | None = None     # GX Data Docs of the night's batch (validation results)

    @property
    def has_content(self) -> bool:
        return bool(self.quarantine) or not self.missing_marks.empty or not self.newly.empty or not self.unresolved_n.empty


def build_exception_report(conn, school: School, run_date: dt.date, pupils: pd.DataFrame) -> ExceptionReport:
    batch = conn.execute(sa.text(
        "select status, reason, data_docs from raw.load_batches where school_urn = :u and extract_date = :d"),
        {"u": school.urn, "d": run_date}).first()
    quarantine = []
    if batch is not None and batch.status != "loaded":
        reason = batch.reason or {}
        quarantine = [f["message"] for f in reason.get("findings", []) if f.get("severity") == "critical"] or [
            reason.get("error", batch.status)]
    last_day = conn.execute(sa.text(
        "select max(session_date) from marts.rpt_register_quality where school_urn = :u"), {"u": school.urn}).scalar()
    missing = pd.read_sql(sa.text(
        "select form_group as register, session_name as session, missing_marks from marts.rpt_register_quality "
        "where school_urn = :u and session_date = :d and missing_marks > 0 order by 1, 2"),
        conn, params={"u": school.urn, "d": last_day})
    thresholds = (pupils["is_new_on_watch_list"].fillna(False) & (
        pupils["has_reached_10_unauthorised_in_10_weeks"] | pupils["is_persistent_absence"]
        | pupils["is_severe_absence"])) | pupils["is_continuous_absence_day_3"].fillna(False)
    newly = pupils.loc[thresholds.astype(bool), ["pupil_name", "form", "attendance_percent", "days_missed",
                                                 "unauthorised_sessions_10_school_weeks",
                                                 "consecutive_school_days_absent", "stage"]]
    unresolved = pupils.loc[pupils["has_unresolved_n_codes"], ["pupil_name", "form", "unresolved_n_codes"]]
    return ExceptionReport(school, run_date, quarantine, missing, newly, unresolved, last_day,
                           batch.data_docs if batch is not None else None)


def render_exception_email(report: ExceptionReport, sender: str, attachment: Path | None) -> EmailMessage:
    school, day = report.school, report.run_date
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(school.lead_contacts)
    message["Subject"] = f"Attendance exceptions: {school.name} ({school.urn}), {day:%A %d %B %Y}"
    # Deterministic id: a re-sent copy of the same night's email is recognisably the same message.
    digest = hashlib.sha256(f"{school.urn}|{day}|exceptions".encode()).hexdigest()[:24]
    message["Message-ID"] = make_msgid(idstring=digest, domain="trust-attendance.local")
    sections = []
    if report.quarantine:
        sections.append(("Tonight's data was NOT loaded (quarantined)", ["Problem"], [[m] for m in report.quarantine]))
    if not report.missing_marks.empty:
        sections.append((f"Missing marks on {report.last_open_day:%A %d %B}", ["Register", "Session", "Missing marks"],
                         report.missing_marks.values.tolist()))
    if not report.newly.empty:
        sections.append(("Pupils newly reaching a threshold",
                         ["Pupil", "Form", "Attendance %", "Days missed", "Unauthorised sessions (10 weeks)",
                          "Days absent in a row", "Stage"], report.newly.values.tolist()))
    if not report.unresolved_n.empty:
        sections.append(("Unresolved N codes (reason not yet established, 5+ school days)",
                         ["Pupil", "Form", "N codes"], report.unresolved_n.values.tolist()))
    intro = f"Attendance exceptions for {school.name} from last night's load."
    text = [intro, ""]
    parts = [f"<p>{html.escape(intro)}</p>"]
    for title, header, rows in sections:
        text += [title, "-" * len(title)] + ["  " + " | ".join(str(v) for v in row) for row in rows] + [""]
        parts.append(f"<h3>{html.escape(title)}</h3><table border='1' cellpadding='4' cellspacing='0'><tr>"
                     + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
                     + "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
                     + "</table>")
    if report.data_docs:
        text.append(f"Validation results for the night's data (Great Expectations Data Docs): {report.data_docs}")
        parts.append(f"<p>Validation results for the night's data: <a href='{html.escape(Path(report.data_docs).as_uri())}'>"
                     f"Great Expectations Data Docs</a> ({html.escape(report.data_docs)})</p>")
    if attachment:
        text.append(f"The full watch lists are attached ({attachment.name}).")
        parts.append(f"<p>The full watch lists are attached ({html.escape(attachment.name)}).</p>")
    message.set_content("\n".join(text))
    message.add_alternative("<html><body>" + "".join(parts) + "</body></html>", subtype="html")
    if attachment:
        message.add_attachment(attachment.read_bytes(), maintype=XLSX_MIME[0], subtype=XLSX_MIME[1],
                               filename=attachment.name)
    return message


def send_exception_emails(run_date: dt.date, config: TrustConfig | None = None,
                          send_when_empty: bool | None = None) -> dict[str, str]:
    """One email per school to its leads. Idempotent: a school's email for a night is sent once.

    Without SMTP settings (the demo) each email is written to the school's outbox as .eml.

    The ledger row is written 'sending' before the SMTP conversation and 'sent'
    after it; a retry skips 'sent' rows and re-sends 'sending' ones with the same
    Message-ID (at least once, recognisably the same message).
    """
    config = config or load_trust_config()
    if send_when_empty is None:
        send_when_empty = os.environ.get("EXCEPTION_EMAIL_WHEN_EMPTY", "false").lower() == "true"
    settings = smtp_settings()
    outcome = {}
    url = warehouse_url()
    # One ledger connection for every school, autocommitted: each row is written before and after
    # its school's SMTP conversation. A connection per school cost about 4 ms each (at 20 schools a
    # night's emails already sent were checked in 107 ms, now 20). Likewise one SMTP session.
    with engine(url).connect() as conn, connect(url, autocommit=True) as ledger, SmtpSession(settings) as mailer:
        ledger.execute(LEDGER_DDL)
        for school in config.schools:
            row = ledger.execute("select status from publish.sent_emails where school_urn = %s and run_date = %s "
                                 "and kind = 'exceptions'", (school.urn, run_date)).fetchone()
            if row and row[0] in ("sent", "nothing_to_report"):
                outcome[school.urn] = f"already {row[0]}"
                continue
            pupils = school_pupils(conn, school.urn)
            report = build_exception_report(conn, school, run_date, pupils)
            attachment = next(outbox_folder(config, run_date, school.urn).glob("watch_lists_*.xlsx"), None)
            if not report.has_content and not send_when_empty:
                _ledger(ledger, school, run_date, "-", "nothing_to_report")
                outcome[school.urn] = "nothing to report"
                continue
            if not school.lead_contacts:
                outcome[school.urn] = "not sent: the school has no lead contacts"
                log.warning("%s: %s", school.urn, outcome[school.urn])
                continue
            sender = settings["sender"] if settings else "attendance-pipeline@localhost"
            message = render_exception_email(report, sender, attachment)
            _ledger(ledger, school, run_date, message["Message-ID"], "sending")
            if settings:
                mailer.send(message)
                outcome[school.urn] = "sent"
            else:  # no SMTP configured (the demo): the email is written to the outbox instead
                path = outbox_folder(config, run_date, school.urn) / f"exception_email_{school.urn}_{run_date}.eml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(message.as_bytes())
                outcome[school.urn] = f"written to {path}"
            _ledger(ledger, school, run_date, message["Message-ID"], "sent")
    return outcome


def _ledger(conn, school: School, run_date: dt.date, message_id: str, status: str) -> None:
    conn.execute(
        """
        insert into publish.sent_emails (school_urn, run_date, kind, message_id, recipients, status)
        values (%s, %s, 'exceptions', %s, %s, %s)
        on conflict (school_urn, run_date, kind) do update
            set status = excluded.status, message_id = excluded.message_id, updated_at = now()
        """,
        (school.urn, run_date, message_id, ", ".join(school.lead_contacts), status),
    )
