"""Watch lists and exception emails, end to end on a real warehouse and a real SMTP server."""
from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
import smtplib

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

import handbuilt
from smtp_server import SmtpServer
from trust_attendance import nightly, publish
from trust_attendance.config import load_trust_config
from trust_attendance.demo import generate_trust
from trust_attendance.paths import var_dir
from trust_attendance.warehouse import free_port, run_dbt

AS_OF = dt.date(2026, 11, 20)
RUN_DATE = AS_OF + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def loaded_trust(module_database_url):
    trust_dir = var_dir() / "publish_trust"
    manifest = generate_trust(trust_dir, n_schools=2, seed=9, as_of=AS_OF, history_years=2, progress=False)
    handbuilt.write_school(trust_dir, RUN_DATE)
    mp = pytest.MonkeyPatch()
    mp.setenv("TRUST_CONFIG", str(trust_dir / "trust.yml"))
    mp.setenv("WAREHOUSE_URL", module_database_url)
    for urn in nightly.prepare_warehouse():
        nightly.ingest_school(urn, RUN_DATE)
    run_dbt(["build", "--exclude", "resource_type:test", "resource_type:unit_test"], url=module_database_url)
    config = load_trust_config()
    files = publish.export_watch_lists(RUN_DATE, config)
    yield config, manifest, files, sa.create_engine(module_database_url)
    mp.undo()


@pytest.fixture
def smtp(monkeypatch):
    server = SmtpServer(free_port())
    server.start()
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(server.port))
    monkeypatch.setenv("SMTP_FROM", "attendance@trust.example.org")
    yield server
    server.stop()


def _upns(engine, urn: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("select upn from marts.dim_pupils where school_urn = :u"), {"u": urn}).scalars())


def test_watch_list_workbooks_have_every_list_only_their_school_and_rag(loaded_trust):
    config, _, files, engine = loaded_trust
    for school in config.schools:
        workbook = load_workbook(files[school.urn].workbook)
        assert workbook.sheetnames == [name for name, _ in publish.WATCH_LISTS]
        own = _upns(engine, school.urn)
        for sheet in workbook.worksheets:
            assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref
            header = [c.value for c in sheet[1]]
            assert header[:2] == ["Pupil name", "Upn"] and "Days missed" in header
            for row in sheet.iter_rows(min_row=2):
                assert row[1].value in own  # never another school's pupil
                percent = row[header.index("Attendance percent")]
                assert percent.fill.fgColor.rgb.endswith(publish.RAG[publish.rag(percent.value)].lstrip("#"))
    # HB-1 and HB-2 are persistently absent (hand-built school: 84.2 % and 90.0 %).
    pa = load_workbook(files[handbuilt.URN].workbook)["PA"]
    assert sorted(r[0].value for r in pa.iter_rows(min_row=2)) == ["Ada Lovelace", "Alan Turing"]
    assert files[handbuilt.URN].csv.exists()
    summary = load_workbook(config.outbox_dir / RUN_DATE.isoformat() / f"trust_watch_list_summary_{RUN_DATE}.xlsx")
    values = [[c.value for c in row] for row in summary.active.iter_rows()]
    assert values[0][:3] == ["URN", "School", "Risk of PA"]
    assert [v[0] for v in values[1:]] == [s.urn for s in config.schools]
    assert values[-1][values[0].index("PA")] == 2


def test_text_from_the_mis_cannot_run_as_a_formula_in_the_watch_lists(loaded_trust, tmp_path):
    # MIS text that looks like a formula or a link must not run or link when the lists are
    # opened in a spreadsheet (CSV/formula injection).
    config, _, _, engine = loaded_trust
    school = next(s for s in config.schools if s.urn == handbuilt.URN)
    with engine.connect() as conn:
        frame = publish.school_pupils(conn, school.urn)
    formula = '=HYPERLINK("http://example.org","x")'
    ada, alan = frame["pupil_name"] == "Ada Lovelace", frame["pupil_name"] == "Alan Turing"
    frame.loc[ada, "pupil_name"] = formula
    frame.loc[alan, ["pupil_name", "form"]] = ["http://example.org", "-1+2"]
    files = publish.write_watch_list(frame, school, tmp_path, RUN_DATE)
    # The workbook's cells are typed: the same text, written as text, with no link.
    names = {cell.value: cell for cell in (row[0] for row in load_workbook(files.workbook)["PA"].iter_rows(min_row=2))}
    assert set(names) == {formula, "http://example.org"}
    assert all(cell.data_type == "s" and cell.hyperlink is None for cell in names.values())
    # A CSV's cells are not: text beginning with a formula character gets a leading apostrophe,
    # other text and the numbers are written as they are.
    with files.csv.open(newline="") as f:
        rows = {row["upn"]: row for row in csv.DictReader(f)}
    [ada_row] = [rows[upn] for upn in frame.loc[ada, "upn"]]
    [alan_row] = [rows[upn] for upn in frame.loc[alan, "upn"]]
    assert ada_row["pupil_name"] == "'" + formula
    assert (alan_row["pupil_name"], alan_row["form"]) == ("http://example.org", "'-1+2")
    assert float(ada_row["attendance_percent"]) == frame.loc[ada, "attendance_percent"].item()


def test_exception_emails_go_to_each_schools_leads_once_with_only_their_pupils(loaded_trust, smtp):
    config, manifest, _, engine = loaded_trust
    outcome = publish.send_exception_emails(RUN_DATE, config, send_when_empty=True)
    assert set(outcome.values()) == {"sent"}
    assert len(smtp.inbox.messages) == len(config.schools)
    by_school = {}
    for recipients, message in smtp.inbox.messages:
        school = next(s for s in config.schools if s.urn in message["Subject"])
        by_school[school.urn] = message
        assert recipients == list(school.lead_contacts)
        assert message["From"] == "attendance@trust.example.org"
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert school.name in text and html.startswith("<html>")
        [attachment] = list(message.iter_attachments())
        workbook = load_workbook(io.BytesIO(attachment.get_content()))
        own = _upns(engine, school.urn)
        for sheet in workbook.worksheets:
            assert all(row[1].value in own for row in sheet.iter_rows(min_row=2))
        # No other school's pupil UPN anywhere in the email.
        others = set().union(*(_upns(engine, s.urn) for s in config.schools if s.urn != school.urn))
        assert not any(upn in text or upn in html for upn in others)
    quarantined = next(urn for urn, s in manifest["schools"].items() if "invalid_code" in s)
    body = by_school[quarantined].get_body(("plain",)).get_content()
    assert "NOT loaded (quarantined)" in body and f"line {manifest['schools'][quarantined]['invalid_code']['line']}" in body
    # the night's GX Data Docs are linked from the exception output
    assert f"data_docs/{RUN_DATE.isoformat()}/{quarantined}/index.html" in body
    missing = next(urn for urn, s in manifest["schools"].items() if "missing_marks" in s)
    form = manifest["schools"][missing]["missing_marks"]["form"]
    assert f"{form} | PM | {manifest['schools'][missing]['missing_marks']['count']}" in \
        by_school[missing].get_body(("plain",)).get_content()
    # A retried task sends nothing twice.
    again = publish.send_exception_emails(RUN_DATE, config, send_when_empty=True)
    assert set(again.values()) == {"already sent"}
    assert len(smtp.inbox.messages) == len(config.schools)


def test_smtp_down_then_back_sends_each_email_exactly_once(loaded_trust, smtp, monkeypatch):
    config, _, _, engine = loaded_trust
    run_date = RUN_DATE + dt.timedelta(days=1)  # a fresh night in the ledger, same figures
    smtp.stop()
    with pytest.raises((smtplib.SMTPException, OSError)):
        publish.send_exception_emails(run_date, config, send_when_empty=True)
    smtp.start()
    publish.send_exception_emails(run_date, config, send_when_empty=True)
    subjects = [m["Subject"] for _, m in smtp.inbox.messages]
    assert len(subjects) == len(set(subjects)) == len(config.schools)


# How the relay treats a session (the test server's settings for it), the night (days after
# RUN_DATE) each case sends for in the ledger, and the connections the three schools' emails arrive on.
RELAYS = {
    "keeps the session": ({}, 2, 1),
    "answers 421 after one message": ({"messages_per_session": 1}, 3, 3),
    "closes the session after each message": ({"closes_after_each_message": True}, 4, 3),
    # the second email is lost with the connection before the relay accepts it: it goes again on a
    # new session, with the third
    "drops the connection during the second email": ({"drops_message_number": 2}, 7, 2),
}


@pytest.mark.parametrize("relay", RELAYS)
def test_a_nights_emails_share_one_smtp_session_while_the_relay_keeps_it(loaded_trust, smtp, relay):
    # A relay's TLS handshake and login are paid once a night, not once a school; a relay that
    # ends the session (a limit per connection, an idle timeout, a lost connection) still gets
    # every email, once.
    config, _, _, _ = loaded_trust
    behaviour, night, connections = RELAYS[relay]
    for setting, value in behaviour.items():
        setattr(smtp.inbox, setting, value)
    outcome = publish.send_exception_emails(RUN_DATE + dt.timedelta(days=night), config, send_when_empty=True)
    assert set(outcome.values()) == {"sent"}
    subjects = [m["Subject"] for _, m in smtp.inbox.messages]
    assert len(subjects) == len(set(subjects)) == len(config.schools) == 3
    assert len(set(smtp.inbox.peers)) == connections


def test_a_refusal_other_than_421_is_raised_not_sent_again_on_a_new_session(loaded_trust, smtp):
    # A relay that refuses the sender (550) would refuse it on any session: the task fails, and
    # its retry sends what the ledger shows unsent.
    config, _, _, _ = loaded_trust
    smtp.inbox.messages_per_session = 1
    smtp.inbox.over_limit_reply = "550 5.7.1 Client does not have permissions to send as this sender"
    with pytest.raises(smtplib.SMTPSenderRefused):
        publish.send_exception_emails(RUN_DATE + dt.timedelta(days=5), config, send_when_empty=True)
    assert len(smtp.inbox.messages) == 1


def test_the_emails_keep_to_the_relays_rate(loaded_trust, smtp, monkeypatch):
    # Exchange Online takes 30 messages a minute from a mailbox and refuses the rest. At 2 a
    # minute, the third school's email waits until the first was sent a minute ago: 0 + 60 - 0 =
    # 60 s on a clock that only moves when the session sleeps (the server is real).
    config, _, _, _ = loaded_trust
    monkeypatch.setenv("SMTP_MAX_PER_MINUTE", "2")
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(publish.SmtpSession, "clock", staticmethod(lambda: now[0]))
    monkeypatch.setattr(publish.SmtpSession, "sleep", staticmethod(sleep))
    outcome = publish.send_exception_emails(RUN_DATE + dt.timedelta(days=6), config, send_when_empty=True)
    assert set(outcome.values()) == {"sent"} and len(smtp.inbox.messages) == len(config.schools) == 3
    assert slept == [60.0]


def test_nothing_to_report_sends_nothing(loaded_trust):
    config, _, _, _ = loaded_trust
    empty = publish.ExceptionReport(config.schools[0], RUN_DATE, [], *(publish.pd.DataFrame(),) * 3, None)
    assert not empty.has_content


def test_governor_packs_answer_the_questions_with_aggregates_only(loaded_trust):
    from trust_attendance.governor_pack import build_governor_packs

    config, manifest, _, engine = loaded_trust
    written = [Path(p) for p in build_governor_packs(AS_OF, "all", config)]
    assert len(written) == 2 * (len(config.schools) + 1)  # PDF and HTML for the trust and each school
    with engine.connect() as conn:
        names = set(conn.execute(sa.text("select legal_forename || ' ' || legal_surname from marts.dim_pupils")).scalars())
        upns = set(conn.execute(sa.text("select upn from marts.dim_pupils")).scalars())
        trust_pa = conn.execute(sa.text(
            "select persistent_absence_rate from marts.rpt_absence_by_group_weekly where scope = 'trust' "
            "and population = 'statutory_school_age' and dimension = 'all_pupils' "
            "order by academic_year desc, academic_week_number desc limit 1")).scalar()
    quarantined = next(urn for urn, s in manifest["schools"].items() if "invalid_code" in s)
    for path in written:
        if path.suffix == ".pdf":
            assert path.read_bytes().startswith(b"%PDF")
            continue
        text = path.read_text()
        if quarantined in path.name:  # its only batch was quarantined: nothing to report on
            assert "No data loaded yet" in text
            continue
        assert "How does our attendance and absence data compare to local and national averages?" in text
        assert not any(name in text for name in names) and not any(upn in text for upn in upns)
    trust_html = next(p for p in written if p.name == f"governor_pack_trust_{AS_OF}.html").read_text()
    assert f"{float(trust_pa) * 100:.1f} %" in trust_html  # the commentary quotes the mart's PA rate
    assert "How does absence impact attainment?" in trust_html  # last year's KS2 results


def test_governor_pack_suppresses_small_groups(loaded_trust):
    from trust_attendance.governor_pack import build_pack

    config, _, _, engine = loaded_trust
    with engine.connect() as conn:
        pack = build_pack(conn, "school", handbuilt.URN, "Hand-built", "primary", min_group_size=5)
    groups = next(s for s in pack.sections if "SEND" in s.question)
    assert groups.table.empty  # two pupils: every group is under 5
    assert any("fewer than 5 pupils are not shown" in line for line in groups.commentary)
    gap = next(s for s in pack.sections if "disadvantaged" in s.question)
    assert gap.commentary == ["Pupil premium pupils are fewer than the suppression threshold; the gap is not shown."]


def test_a_failed_task_emails_the_data_team(loaded_trust, smtp):
    config, _, _, _ = loaded_trust

    class FailedTask:
        dag_id, task_id, map_index, rendered_map_index = "nightly_attendance", "ingest_school", 3, "900004"

    publish.notify_failure({"task_instance": FailedTask(), "run_id": "scheduled__2026-11-21",
                            "exception": RuntimeError("no export for 2026-11-21")})
    [(recipients, message)] = smtp.inbox.messages
    assert recipients == list(config.data_team_contacts)
    assert message["Subject"] == "[attendance pipeline] nightly_attendance.ingest_school[900004] failed"
    assert "no export for 2026-11-21" in message.get_content()
