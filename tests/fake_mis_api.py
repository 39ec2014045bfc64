"""A real HTTP server on loopback speaking the vendor API (Wonde-style), for tests.

It serves a school's pupils and attendance sessions from the demo CSV layout,
paginated, behind a bearer token, and can misbehave on request: answer 500 or
429 a few times, truncate a page once, fail from some page on, or claim to be
another school.
"""
from __future__ import annotations

import csv
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

BOOLEANS = ("pupil_premium", "fsm", "fsm6", "eal", "looked_after", "previously_looked_after",
            "child_in_need", "child_protection_plan")


@dataclass
class Faults:
    server_errors: int = 0          # answer 500 to this many requests first
    rate_limits: int = 0            # answer 429 (Retry-After: 0) to this many requests first
    truncate_once: bool = False     # cut one page in half, once
    truncate_always: bool = False   # cut every page in half
    fail_from_page: int | None = None  # answer 503 to every request for this page number or later
    school_urn: str | None = None   # claim this URN in every page's meta


@dataclass
class FakeMisApi:
    school_id: str
    school_urn: str
    students: list[dict]
    sessions: list[dict]
    token: str = "test-token"
    per_page: int = 100
    faults: Faults = field(default_factory=Faults)
    requests: list[str] = field(default_factory=list)

    @classmethod
    def from_export(cls, folder: Path, school_id: str = "A1930499544", **kwargs) -> "FakeMisApi":
        read = lambda name: list(csv.DictReader(open(folder / name, encoding="utf-8")))  # noqa: E731
        enrolments = {e["pupil_id"]: e for e in read("enrolments.csv")}
        students = []
        for p in read("pupils.csv"):
            e = enrolments[p["pupil_id"]]
            students.append({
                "id": p["pupil_id"], "upn": p["upn"], "forename": p["legal_forename"], "surname": p["legal_surname"],
                "date_of_birth": p["date_of_birth"], "gender": p["sex"], "ethnicity": p["ethnicity"],
                "year_group": p["year_group"], "registration_group": p["form"],
                "admission_date": e["admission_date"], "leaving_date": e["leaving_date"] or None,
                "enrolment_status": e["enrolment_status"], "free_school_meals": p["fsm"] == "Y",
                "sen_provision": p["sen_provision"],
                **{k: p[k] == "Y" for k in BOOLEANS if k != "fsm"},
            })
        sessions = [{"student_id": m["pupil_id"], "date": m["session_date"], "session": m["session"],
                     "attendance_code": m["mark"] or None, "minutes_late": int(m["minutes_late"]) if m["minutes_late"] else None,
                     "comment": m["comment"] or None} for m in read("marks.csv")]
        urn = read("pupils.csv")[0]["school_urn"]
        return cls(school_id=school_id, school_urn=urn, students=students, sessions=sessions, **kwargs)

    def start(self) -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):  # noqa: N802
                api.requests.append(self.path)
                faults = api.faults
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    return self._send(401, {"error": "unauthenticated"})
                if faults.server_errors > 0:
                    faults.server_errors -= 1
                    return self._send(500, {"error": "internal"})
                if faults.rate_limits > 0:
                    faults.rate_limits -= 1
                    return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                page = int(query.get("page", ["1"])[0])
                per_page = int(query.get("per_page", [api.per_page])[0])
                prefix = f"/schools/{api.school_id}/"
                if not parts.path.startswith(prefix):
                    return self._send(404, {"error": "no such school"})
                resource = parts.path[len(prefix):]
                records = {"students": api.students, "attendance/session": api.sessions}.get(resource)
                if records is None:
                    return self._send(404, {"error": "no such resource"})
                if faults.fail_from_page is not None and page >= faults.fail_from_page:
                    return self._send(503, {"error": "unavailable"})
                chunk = records[(page - 1) * per_page: page * per_page]
                more = page * per_page < len(records)
                base = f"http://{self.headers['Host']}{parts.path}?per_page={per_page}"
                body = {"data": chunk, "meta": {"school_urn": faults.school_urn or api.school_urn, "pagination": {
                    "current_page": page, "next": f"{base}&page={page + 1}" if more else None}}}
                raw = json.dumps(body).encode()
                if faults.truncate_once or faults.truncate_always:
                    faults.truncate_once = False
                    raw = raw[: len(raw) // 2]
                self._send_raw(200, raw)

            def _send(self, status, body, headers=None):
                self._send_raw(status, json.dumps(body).encode(), headers)

            def _send_raw(self, status, raw, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
