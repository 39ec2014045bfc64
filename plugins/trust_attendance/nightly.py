"""The nightly pipeline's steps, one function per DAG task.

The DAG only wires these together; each step takes and returns plain values
(dicts that fit in XCom), so every step runs the same way in a test, in
``airflow dags test`` and under the scheduler.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from contextlib import nullcontext

from . import load, sources, validate
from .config import load_trust_config
from .sources import LandedBatch
from .warehouse import ensure_access, masked, run_dbt, warehouse_url

log = logging.getLogger(__name__)


def prepare_warehouse() -> list[str]:
    """Create the raw schema, sync the school list; return the URNs to process."""
    url = warehouse_url()
    log.info("warehouse: %s", masked(url))
    config = load_trust_config()
    ensure_access(url)
    load.ensure_raw_schema(url)
    load.sync_schools(url, config.schools)
    return [school.urn for school in config.schools]


def extract_school(school_urn: str, extract_date: dt.date) -> LandedBatch:
    config = load_trust_config()
    school = config.school(school_urn)
    try:
        batch = sources.extract(school, extract_date, config.landing_dir)
    except sources.ExtractError as exc:
        load.record_extract_failure(warehouse_url(), school_urn, extract_date, str(exc))
        raise
    log.info("landed %s", batch.folder)
    return batch


def ingest_school(school_urn: str, extract_date: dt.date) -> dict:
    """One school's night, extract -> validate -> load, as one task: the batch is the unit a retry
    repeats (each stage is idempotent for the night), and a night of 100 schools pays one task's
    start-up per school rather than three. Returns what happened and each stage's seconds: the
    load runs beside the GX checks (``load.LoadBegun``), so ``validate`` holds both and
    ``load_after_checks`` is what the load (or the quarantine) took once they were done."""
    seconds, started = {}, time.perf_counter()
    batch = extract_school(school_urn, extract_date)
    seconds["extract"], started = time.perf_counter() - started, time.perf_counter()
    url = warehouse_url()
    report, frames = validate.stage_batch(batch, url)
    staged, loaded = report.staged_marks is not None, None
    loading = staged and report.passed  # so far: the load begins beside the checks, which commit it or not
    if loading:
        load.write_validated(batch, frames)
    with load.LoadBegun(url, batch, report.staged_marks) if loading else nullcontext() as begun:
        if staged:
            validate.check_batch(batch, url, report, frames)
        seconds["validate"], started = time.perf_counter() - started, time.perf_counter()
        if report.passed:
            loaded = begun.commit(report)
            log.info("loaded %s", loaded)
    for finding in report.findings:
        (log.error if finding.severity == "critical" else log.warning)(finding.message())
    quarantined_to = None
    if not report.passed:
        quarantined_to = str(load.quarantine(url, batch, report, load_trust_config().quarantine_dir))
        log.error("school %s quarantined for %s: see %s", batch.school_urn, batch.extract_date, quarantined_to)
    seconds["load_after_checks"] = time.perf_counter() - started
    return {"school_urn": school_urn, "extract_date": extract_date.isoformat(),
            "loaded": loaded.to_dict() if loaded else None, "quarantined_to": quarantined_to,
            "findings": len(report.findings),
            "seconds": {stage: round(s, 3) for stage, s in seconds.items()}}


def build_marts(full_refresh: bool = False) -> None:
    result = run_dbt(["build", "--fail-fast"] + (["--full-refresh"] if full_refresh else []))
    log.info(result.stdout[-4000:])


def extract_date_for(context: dict) -> dt.date:
    """The night's extract date: the run's logical date (or when it was due), in UK time."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.in_timezone("Europe/London").date()


def export_watch_lists(extract_date: dt.date) -> dict[str, str]:
    from . import publish

    return {urn: str(files.workbook) for urn, files in publish.export_watch_lists(extract_date).items()}


def send_exception_emails(extract_date: dt.date) -> dict[str, str]:
    from . import publish

    outcome = publish.send_exception_emails(extract_date)
    log.info("exception emails: %s", outcome)
    return outcome


def is_half_term_end(day: dt.date) -> bool:
    """Whether ``day`` is the last school day before a break of more than a week (standard calendar)."""
    from .school_calendar import academic_year_start, school_days

    days = school_days(academic_year_start(day))
    if day not in days:
        return False
    i = days.index(day)
    return i == len(days) - 1 or (days[i + 1] - day).days > 7


def build_governor_packs(period_end: dt.date, school: str = "all") -> list[str]:
    from .governor_pack import build_governor_packs as build

    return build(period_end, school)


def purge_expired_marks(today: dt.date) -> dict[str, int]:
    """Retention: keep the current academic year and the previous RETENTION_YEARS (default 3)."""
    import os

    url = warehouse_url()
    load.ensure_raw_schema(url)
    purged = load.purge_expired(url, today, int(os.environ.get("RETENTION_YEARS", "3")))
    log.info("purged: %s", purged)
    return purged


def rebuild_marts_after_purge(purged: dict[str, int]) -> bool:
    """Rebuild every model from raw after a purge that deleted marks; False if nothing was purged.
    The incremental models re-read only the marks loaded since their last build, so marks deleted
    from raw would otherwise stay in them (and in the marts) for good."""
    if not any(purged.values()):
        log.info("nothing purged: the marts are left as they are")
        return False
    build_marts(full_refresh=True)
    return True
