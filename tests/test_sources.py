"""Each MIS source lands a batch that validates and loads: tested against a real
HTTP server on loopback (the vendor API), real GX checkpoints and real PostgreSQL."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from fake_mis_api import FakeMisApi, Faults
from trust_attendance import load
from trust_attendance.config import School
from trust_attendance.demo import generate_trust
from trust_attendance.sources import ExtractError, extract
from trust_attendance.validate import validate_batch

AS_OF = dt.date(2026, 10, 2)
EXTRACT_DATE = AS_OF + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("api_trust")
    manifest = generate_trust(out, n_schools=1, seed=21, as_of=AS_OF, history_years=1, progress=False)
    [(urn, school)] = manifest["schools"].items()
    return out / school["extract_folder"], urn


@pytest.fixture
def api(export, monkeypatch):
    folder, urn = export
    server = FakeMisApi.from_export(folder, per_page=1000)
    url = server.start()
    monkeypatch.setenv("TEST_MIS_TOKEN", server.token)
    school = School(urn=urn, name="API Primary", phase="primary", la_code="880", source={
        "type": "vendor_api", "base_url": url, "school_id": server.school_id, "token_env": "TEST_MIS_TOKEN",
        "per_page": 1000, "backoff_seconds": 0.01, "max_attempts": 4})
    yield server, school, folder
    server.stop()


def test_api_batch_is_the_same_as_the_csv_export_and_loads(api, tmp_path, database_url):
    server, school, folder = api
    batch = extract(school, EXTRACT_DATE, tmp_path / "landing")
    # The API's records, converted, are byte for byte the school's own CSV export.
    for name in ("marks.csv", "pupils.csv", "enrolments.csv"):
        assert batch.file(name).read_text() == (folder / name).read_text(), name
    pages = len([p for p in server.requests if "attendance" in p])
    assert pages == -(-len(server.sessions) // 1000)  # ceil: every page fetched once
    assert (batch.folder / "api" / "attendance" / "page-00001.json").exists()  # pages kept as received
    report, frames = validate_batch(batch, database_url)
    assert report.passed, [f.message() for f in report.critical()]
    load.ensure_raw_schema(database_url)
    load.write_validated(batch, frames)
    with load.LoadBegun(database_url, batch, report.staged_marks) as begun:
        begun.commit(report)
    with sa.create_engine(database_url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw.register_marks")).scalar() == len(server.sessions)
        assert conn.execute(sa.text("select count(*) from raw.pupils")).scalar() == len(server.students)


def test_server_errors_rate_limits_and_a_truncated_page_are_retried(api, tmp_path):
    server, school, folder = api
    server.faults = Faults(server_errors=2, rate_limits=1, truncate_once=True)
    school.source["max_attempts"] = 5  # four faults, then the page
    batch = extract(school, EXTRACT_DATE, tmp_path / "landing")
    assert batch.file("marks.csv").read_text() == (folder / "marks.csv").read_text()
    assert server.faults.server_errors == 0 and server.faults.rate_limits == 0 and not server.faults.truncate_once


def test_a_failed_extract_resumes_from_its_cursor(api, tmp_path):
    server, school, folder = api
    server.faults = Faults(fail_from_page=3)
    with pytest.raises(ExtractError, match="failed after 4 attempts: HTTP 503"):
        extract(school, EXTRACT_DATE, tmp_path / "landing")
    server.faults = Faults()
    server.requests.clear()
    batch = extract(school, EXTRACT_DATE, tmp_path / "landing")
    # Pupils and the first two attendance pages were saved last time: not fetched again.
    attendance_pages = [p for p in server.requests if "attendance" in p]
    assert not any("students" in p for p in server.requests)
    assert attendance_pages[0].endswith("page=3")
    assert batch.file("marks.csv").read_text() == (folder / "marks.csv").read_text()


def test_a_wrong_token_stops_with_a_clear_error(api, tmp_path, monkeypatch):
    _, school, _ = api
    monkeypatch.setenv("TEST_MIS_TOKEN", "wrong")
    with pytest.raises(ExtractError, match=f"school {school.urn}: .*students.* answered HTTP 401"):
        extract(school, EXTRACT_DATE, tmp_path / "landing")


def test_another_schools_records_fail_validation(api, tmp_path, database_url):
    server, school, _ = api
    server.faults = Faults(school_urn="999999")
    batch = extract(school, EXTRACT_DATE, tmp_path / "landing")
    report, _ = validate_batch(batch, database_url)
    assert not report.passed
    assert any("the file belongs to the school it was pulled for" in f.message() and "'999999'" in f.message()
               for f in report.critical())
