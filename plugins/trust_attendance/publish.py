"""What people receive: watch lists, and the data team's failure alerts."""
from __future__ import annotations

import datetime as dt
import logging
import os
import smtplib
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from .config import TrustConfig, load_trust_config
from .warehouse import engine

log = logging.getLogger(__name__)

SESSIONS_PER_DAY = 2

WATCH_LIST_SQL = """
select
    schools.school_name,
    pupils.legal_forename || ' ' || pupils.legal_surname as pupil_name,
    pupils.upn,
    pupils.year_group,
    pupils.form_group,
    attendance.is_pupil_premium,
    attendance.sen_provision,
    attendance.attendance_rate,
    attendance.absence_sessions,
    attendance.unauthorised_absence_sessions,
    attendance.possible_sessions,
    attendance.is_persistent_absence,
    attendance.is_severe_absence,
    attendance.attendance_band,
    attendance.as_of_date
from marts.fct_pupil_attendance as attendance
join marts.dim_pupils as pupils using (pupil_key)
join marts.dim_schools as schools on schools.school_urn = attendance.school_urn
where attendance.school_urn = :school_urn
  and attendance.academic_year = (select max(academic_year) from marts.fct_pupil_attendance)
  and attendance.is_persistent_absence
order by attendance.attendance_rate, pupils.legal_surname
"""


def outbox_folder(config: TrustConfig, run_date: dt.date, school_urn: str) -> Path:
    pattern = os.environ.get("OUTBOX_PATTERN", "{outbox}/{date}/{urn}")
    return Path(pattern.format(outbox=config.outbox_dir, date=run_date.isoformat(), urn=school_urn))


def export_watch_lists(run_date: dt.date, config: TrustConfig | None = None) -> list[str]:
    """One CSV per school of its persistently and severely absent pupils, this academic year.

    Sessions missed are shown as days as well, because the trust's charter
    reports days, not percentages, to parents.
    """
    config = config or load_trust_config()
    written = []
    with engine().connect() as conn:
        for school in config.schools:
            frame = pd.read_sql(sa.text(WATCH_LIST_SQL), conn, params={"school_urn": school.urn})
            frame["attendance_percent"] = (frame.pop("attendance_rate").astype(float) * 100).round(1)
            frame["days_missed"] = frame["absence_sessions"] / SESSIONS_PER_DAY
            frame["stage"] = frame["is_severe_absence"].map({True: "Severe absence (<50%)", False: "Persistent absence (<90%)"})
            folder = outbox_folder(config, run_date, school.urn)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"watch_list_{school.urn}_{run_date.isoformat()}.csv"
            frame.to_csv(path, index=False)
            written.append(str(path))
    return written


def smtp_settings() -> dict | None:
    """SMTP from the environment (SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_STARTTLS, SMTP_FROM)."""
    host = os.environ.get("SMTP_HOST")
    if not host:
        return None
    return {
        "host": host,
        "port": int(os.environ.get("SMTP_PORT", "25")),
        "user": os.environ.get("SMTP_USER"),
        "password": os.environ.get("SMTP_PASSWORD"),
        "starttls": os.environ.get("SMTP_STARTTLS", "false").lower() == "true",
        "sender": os.environ.get("SMTP_FROM", "attendance-pipeline@localhost"),
    }


def send_email(to: list[str], subject: str, text: str) -> bool:
    settings = smtp_settings()
    if not settings or not to:
        log.warning("email not sent (no SMTP_HOST or no recipients): %s", subject)
        return False
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings["sender"], ", ".join(to), subject
    message.set_content(text)
    with smtplib.SMTP(settings["host"], settings["port"], timeout=30) as smtp:
        if settings["starttls"]:
            smtp.starttls()
        if settings["user"]:
            smtp.login(settings["user"], settings["password"] or "")
        smtp.send_message(message)
    return True


def notify_failure(context: dict) -> None:
    """Airflow on_failure_callback: tell the data team which task failed and why."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    map_index = getattr(ti, "map_index", -1)
    error = context.get("exception")
    subject = f"[attendance pipeline] {dag_id}.{task_id}{f'[{map_index}]' if map_index not in (-1, None) else ''} failed"
    text = f"Task {task_id} of {dag_id} failed for run {context.get('run_id')}.\n\nError: {error}\n"
    log.error("%s: %s", subject, error)
    try:
        send_email(list(load_trust_config().data_team_contacts), subject, text)
    except Exception:  # noqa: BLE001 - a failing alert must not hide the original failure
        log.exception("could not send the failure email")
