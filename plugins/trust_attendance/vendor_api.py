"""Client for a data broker's REST API in the shape of Wonde's.

Endpoints, per school (``{base_url}/schools/{school_id}/...``):

- ``students?per_page=N``: ``{"data": [student, ...], "meta": {"school_urn": ..., "pagination": {"next": url|null}}}``
  where a student is ``{"id", "upn", "forename", "surname", "date_of_birth", "gender", "ethnicity",
  "year_group", "registration_group", "admission_date", "leaving_date", "enrolment_status",
  "pupil_premium", "free_school_meals", "fsm6", "sen_provision", "eal", "looked_after",
  "previously_looked_after", "child_in_need", "child_protection_plan"}``;
- ``attendance/session?per_page=N``: the same envelope, records
  ``{"student_id", "date", "session" (AM/PM), "attendance_code", "minutes_late", "comment"}``.

Authentication is a bearer token, read from the environment variable the
school's source names (``token_env``) or from an Airflow connection
(``conn_id``, its password). 429 and 5xx answers, dropped connections and
truncated pages are retried with exponential backoff (``Retry-After`` is
honoured); any other error stops the extract with a clear message.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from .config import School, hide_in_logs
from .sources import ExtractError
from .export_layout import EXPORT_FILES as LAYOUT

ENDPOINTS = {"students": "students", "attendance": "attendance/session"}
MAX_PAGE_BYTES = 50 * 1024 * 1024


def _token(school: School) -> str:
    source = school.source
    if source.get("token_env"):
        token = os.environ.get(source["token_env"])
        if token:
            hide_in_logs(token)
            return token
    if source.get("conn_id"):
        try:
            from airflow.sdk import BaseHook

            return BaseHook.get_connection(source["conn_id"]).password
        except Exception as exc:  # noqa: BLE001
            raise ExtractError(f"school {school.urn}: cannot read Airflow connection {source['conn_id']!r}: {exc}") from None
    raise ExtractError(f"school {school.urn}: no API token (set {source.get('token_env') or 'token_env'} or conn_id)")


class ApiClient:
    def __init__(self, school: School, token: str, max_attempts: int = 6, backoff_seconds: float = 0.5,
                 timeout: float = 60.0):
        self.school, self.token = school, token
        self.max_attempts, self.backoff_seconds, self.timeout = max_attempts, backoff_seconds, timeout

    def get_json(self, url: str) -> dict:
        last_error = ""
        for attempt in range(1, self.max_attempts + 1):
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}",
                                                           "Accept": "application/json"})
            wait = self.backoff_seconds * 2 ** (attempt - 1)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    body = response.read(MAX_PAGE_BYTES + 1)
                if len(body) > MAX_PAGE_BYTES:
                    raise ExtractError(f"school {self.school.urn}: page larger than {MAX_PAGE_BYTES} bytes: {url}")
                return json.loads(body)
            except urllib.error.HTTPError as exc:
                if exc.code == 429 or exc.code >= 500:
                    retry_after = exc.headers.get("Retry-After")
                    wait = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else wait
                    last_error = f"HTTP {exc.code}"
                else:
                    raise ExtractError(f"school {self.school.urn}: {url} answered HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last_error = f"connection failed: {exc}"
            except json.JSONDecodeError as exc:
                last_error = f"truncated or invalid JSON page ({exc})"
            if attempt < self.max_attempts:
                time.sleep(wait)
        raise ExtractError(f"school {self.school.urn}: {url} failed after {self.max_attempts} attempts: {last_error}")


def _pages(client: ApiClient, first_url: str, folder: Path):
    """Yield saved pages, resuming after the last page saved by an earlier attempt."""
    folder.mkdir(parents=True, exist_ok=True)
    cursor_file = folder / "cursor.json"
    cursor = json.loads(cursor_file.read_text()) if cursor_file.exists() else {"next": first_url, "pages": 0}
    for n in range(1, cursor["pages"] + 1):
        yield json.loads((folder / f"page-{n:05d}.json").read_text())
    while cursor["next"]:
        page = client.get_json(cursor["next"])
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise ExtractError(f"school {client.school.urn}: {cursor['next']} is not a page of records")
        cursor["pages"] += 1
        (folder / f"page-{cursor['pages']:05d}.json").write_text(json.dumps(page))
        cursor["next"] = ((page.get("meta") or {}).get("pagination") or {}).get("next")
        tmp = cursor_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cursor))
        tmp.replace(cursor_file)
        yield page


def _value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def fetch_school(school: School, extract_date: dt.date, staging: Path) -> None:
    """Fetch every page into ``staging/api`` and write the export CSVs beside them."""
    source = school.source
    base = f"{source['base_url'].rstrip('/')}/schools/{source['school_id']}"
    per_page = int(source.get("per_page", 1000))
    client = ApiClient(school, _token(school), max_attempts=int(source.get("max_attempts", 6)),
                       backoff_seconds=float(source.get("backoff_seconds", 0.5)))
    students_cols = LAYOUT["pupils.csv"]
    with open(staging / "pupils.csv", "w", newline="", encoding="utf-8") as pupils_f, \
         open(staging / "enrolments.csv", "w", newline="", encoding="utf-8") as enrolments_f:
        pupils, enrolments = csv.writer(pupils_f), csv.writer(enrolments_f)
        pupils.writerow(students_cols)
        enrolments.writerow(LAYOUT["enrolments.csv"])
        for page in _pages(client, f"{base}/{ENDPOINTS['students']}?per_page={per_page}", staging / "api" / "students"):
            urn = _value((page.get("meta") or {}).get("school_urn"))
            for s in page["data"]:
                record = {
                    "school_urn": urn, "pupil_id": s.get("id"), "upn": s.get("upn"), "legal_forename": s.get("forename"),
                    "legal_surname": s.get("surname"), "date_of_birth": s.get("date_of_birth"), "sex": s.get("gender"),
                    "ethnicity": s.get("ethnicity"), "year_group": s.get("year_group"), "form": s.get("registration_group"),
                    **{k: s.get(k) for k in ("pupil_premium", "fsm6", "sen_provision", "eal", "looked_after",
                                             "previously_looked_after", "child_in_need", "child_protection_plan")},
                    "fsm": s.get("free_school_meals"),
                }
                pupils.writerow([_value(record[c]) for c in students_cols])
                enrolments.writerow([urn, _value(s.get("id")), _value(s.get("admission_date")),
                                     _value(s.get("leaving_date")), _value(s.get("enrolment_status") or "C")])
    with open(staging / "marks.csv", "w", newline="", encoding="utf-8") as marks_f:
        marks = csv.writer(marks_f)
        marks.writerow(LAYOUT["marks.csv"])
        for page in _pages(client, f"{base}/{ENDPOINTS['attendance']}?per_page={per_page}", staging / "api" / "attendance"):
            urn = _value((page.get("meta") or {}).get("school_urn"))
            for r in page["data"]:
                marks.writerow([urn, _value(r.get("student_id")), _value(r.get("date")), _value(r.get("session")),
                                _value(r.get("attendance_code")), _value(r.get("minutes_late")), _value(r.get("comment"))])
