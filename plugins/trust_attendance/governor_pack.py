"""Governor and trustee packs: per school and for the trust, HTML and PDF.

Structured around the charter's "Questions to ask to seek assurance" (seed
000) that data can answer; each answered with a chart and plain-English
commentary generated from the figures. Aggregates only: no pupil names, and
any group smaller than ``min_group_size`` pupils (default 5) is suppressed.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from .config import TrustConfig, load_trust_config  # noqa: E402
from .warehouse import engine  # noqa: E402

DEFAULT_MIN_GROUP_SIZE = int(os.environ.get("GOVERNOR_PACK_MIN_GROUP", "5"))
GROUP_DIMENSIONS = {
    "pupil_premium": "Pupil premium", "free_school_meals": "Free school meals", "sen_provision": "SEN",
    "english_additional_language": "EAL", "sex": "Sex", "disadvantaged": "Disadvantaged",
}


@dataclass
class Section:
    question: str
    commentary: list[str]
    figure: plt.Figure | None = None
    table: pd.DataFrame | None = None


@dataclass
class Pack:
    title: str
    subtitle: str
    sections: list[Section] = field(default_factory=list)


def pct(value, digits: int = 1) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value) * 100:.{digits}f} %"


def _compare(now, before, noun: str, lower_is_better: bool) -> str:
    if before is None or pd.isna(before):
        return f"{noun} is {pct(now)}."
    change = (float(now) - float(before)) * 100
    if abs(change) < 0.05:
        return f"{noun} is {pct(now)}, the same as at this point last year."
    direction = "rose" if change > 0 else "fell"
    better = (change < 0) == lower_is_better
    return (f"{noun} {direction} from {pct(before)} to {pct(now)} compared with the same week last year "
            f"({'an improvement' if better else 'a deterioration'} of {abs(change):.1f} points).")


def _versus_national(now, national, noun: str, lower_is_better: bool) -> str:
    if national is None or now is None or pd.isna(now):
        return ""
    above = float(now) > float(national)
    good = above != lower_is_better
    return f"{noun} is {'above' if above else 'below'} the national {pct(national)} ({'better' if good else 'worse'} than national)."


def _figure(title: str) -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(8.27, 3.6))
    ax.set_title(title, fontsize=11, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def build_pack(conn, scope: str, school_urn: str | None, name: str, phase: str | None,
               min_group_size: int = DEFAULT_MIN_GROUP_SIZE) -> Pack:
    where = "scope = 'school' and school_urn = :u" if scope == "school" else "scope = 'trust'"
    params = {"u": school_urn}
    weekly = pd.read_sql(sa.text(
        f"select * from marts.rpt_absence_by_group_weekly where {where} and population = 'statutory_school_age' "
        "order by academic_year, academic_week_number"), conn, params=params)
    if weekly.empty:
        return Pack(f"Attendance: {name}", "No data loaded yet", [])
    year = int(weekly["academic_year"].max())
    this_year = weekly[weekly["academic_year"] == year]
    latest_week = int(this_year["academic_week_number"].max())
    latest = this_year[this_year["academic_week_number"] == latest_week]
    headline = latest[latest["dimension"] == "all_pupils"].iloc[0]
    benchmarks = pd.read_sql(sa.text("select benchmark_key, phase, value from reference.national_benchmarks "
                                     "where area = 'England'"), conn)
    def national(key: str, benchmark_phase: str = "all"):
        match = benchmarks[(benchmarks.benchmark_key == key) & (benchmarks.phase == benchmark_phase)]
        return None if match.empty else float(match["value"].iloc[0])

    national_absence = national("overall_absence_rate", phase or "all") or national("overall_absence_rate")
    national_attendance = 1 - float(national_absence)
    pack = Pack(f"Attendance: {name}",
                f"Academic year {year}/{(year + 1) % 100:02d}, week {latest_week} (w/c {headline['week_start_date']}); "
                f"Years 1-11; groups under {min_group_size} pupils suppressed")

    # 1. How does our attendance compare to national and to last year?
    fig, ax = _figure("Weekly attendance: this year, last year and national")
    trend = weekly[weekly["dimension"] == "all_pupils"]
    for y, style in ((year, "-"), (year - 1, "--")):
        rows = trend[trend["academic_year"] == y]
        if not rows.empty:
            ax.plot(rows["academic_week_number"], rows["week_attendance_rate"].astype(float) * 100, style,
                    label=f"{y}/{(y + 1) % 100:02d}")
    ax.axhline(national_attendance * 100, color="grey", linestyle=":", label=f"National {national_attendance * 100:.1f} %")
    ax.set_xlabel("Week of the academic year")
    ax.set_ylabel("Attendance %")
    ax.legend(frameon=False, fontsize=8)
    pack.sections.append(Section(
        "How does our attendance and absence data compare to local and national averages? How does it compare to last year?",
        [_compare(headline["year_to_date_attendance_rate"], headline["previous_year_year_to_date_attendance_rate"],
                  "Attendance this year", lower_is_better=False),
         _versus_national(headline["year_to_date_attendance_rate"], national_attendance, "Attendance", False),
         _compare(headline["persistent_absence_rate"], headline["previous_year_persistent_absence_rate"],
                  "Persistent absence (PA)", lower_is_better=True),
         _versus_national(headline["persistent_absence_rate"], national("persistent_absence_rate"), "PA", True),
         _compare(headline["severe_absence_rate"], headline["previous_year_severe_absence_rate"],
                  "Severe absence (SA)", lower_is_better=True)],
        fig))

    # 2. SEND and FSM / groups of concern.
    groups = latest[latest["dimension"].isin(GROUP_DIMENSIONS)].copy()
    groups["label"] = groups["dimension"].map(GROUP_DIMENSIONS) + ": " + groups["dimension_value"]
    shown = groups[groups["enrolments"] >= min_group_size]
    suppressed = groups[groups["enrolments"] < min_group_size]
    fig, ax = _figure("Persistent and severe absence by group (year to date)")
    ax.barh(shown["label"], shown["persistent_absence_rate"].astype(float) * 100, label="PA %")
    ax.barh(shown["label"], shown["severe_absence_rate"].astype(float) * 100, label="SA %")
    ax.axvline(float(national("persistent_absence_rate")) * 100, color="grey", linestyle=":", label="National PA")
    ax.legend(frameon=False, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    worst = shown.sort_values("persistent_absence_rate", ascending=False).head(3)
    commentary = [f"{r.label}: PA {pct(r.persistent_absence_rate)} of {int(r.enrolments)} pupils." for r in worst.itertuples()]
    if not suppressed.empty:
        commentary.append(f"{len(suppressed)} group(s) with fewer than {min_group_size} pupils are not shown.")
    table = shown[["label", "enrolments", "persistent_absence_rate", "severe_absence_rate"]].rename(columns={
        "label": "Group", "enrolments": "Pupils", "persistent_absence_rate": "PA", "severe_absence_rate": "SA"})
    table["PA"], table["SA"] = table["PA"].map(pct), table["SA"].map(pct)
    pack.sections.append(Section(
        "What about attendance for pupils with SEND, or eligible for free school meals? Which groups should we be "
        "particularly concerned about?", commentary, fig, table))

    # 3. PP gap over time.
    gap_where = "scope = 'school' and scope_value = :u" if scope == "school" else "scope = 'trust'"
    gap = pd.read_sql(sa.text(f"select * from marts.rpt_pupil_premium_gap where {gap_where} and year_group = 'All' "
                              "and academic_year = :y order by academic_week_number"), conn, params={**params, "y": year})
    fig, ax = _figure("Pupil premium attendance gap (percentage points, year to date)")
    small = gap["pupil_premium_enrolments"] < min_group_size
    ax.plot(gap.loc[~small, "academic_week_number"], gap.loc[~small, "attendance_gap_points"].astype(float), label="Gap")
    aspiration = gap["aspiration_gap_points"].dropna()
    if not aspiration.empty:
        ax.axhline(float(aspiration.iloc[0]), color="green", linestyle=":", label="2019 aspiration")
    ax.axhline(float(national("fsm_absence_gap_points")), color="grey", linestyle=":", label="National FSM gap")
    ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel("Week of the academic year")
    last_gap = gap.loc[~small].tail(1)
    gap_text = ("Pupil premium pupils are fewer than the suppression threshold; the gap is not shown." if last_gap.empty
                else f"PP pupils' attendance is {float(last_gap['attendance_gap_points'].iloc[0]):.1f} points below "
                     f"other pupils' ({pct(last_gap['pupil_premium_attendance_rate'].iloc[0])} vs "
                     f"{pct(last_gap['other_attendance_rate'].iloc[0])}).")
    pack.sections.append(Section("Is the work we are doing for disadvantaged pupils having the impact we intended?",
                                 [gap_text], fig))

    # 4. Patterns and trends: bands, codes, day of week.
    bands = pd.read_sql(sa.text(f"select attendance_band, enrolments, share_of_enrolments from marts.rpt_attendance_bands "
                                f"where {where} and academic_year = :y and population = 'statutory_school_age'"),
                        conn, params={**params, "y": year})
    order = ["<50", "50-90", "90-92", "92-95", "95-97", "97-99", "99-100"]
    bands = bands.set_index("attendance_band").reindex(order).fillna(0)
    days = pd.read_sql(sa.text(f"select iso_day_of_week, day_of_week, sum(absence_sessions)::float / "
                               f"nullif(sum(possible_sessions), 0) as absence_rate from marts.rpt_absence_patterns "
                               f"where {where} and academic_year = :y group by 1, 2 order by 1"),
                       conn, params={**params, "y": year})
    codes = pd.read_sql(sa.text(f"select attendance_code, share_of_possible_sessions from marts.rpt_marks_by_code "
                                f"where {where} and academic_year = :y and attendance_category in "
                                "('authorised_absence', 'unauthorised_absence') order by 2 desc limit 8"),
                        conn, params={**params, "y": year})
    fig, axes = plt.subplots(1, 3, figsize=(8.27, 3.2))
    axes[0].bar(order, bands["share_of_enrolments"].astype(float) * 100)
    axes[0].set_title("Pupils by attendance band (%)", fontsize=9)
    axes[0].tick_params(axis="x", labelrotation=45, labelsize=7)
    axes[1].bar(days["day_of_week"].str[:3], days["absence_rate"].astype(float) * 100)
    axes[1].set_title("Absence by day (%)", fontsize=9)
    axes[2].bar(codes["attendance_code"], codes["share_of_possible_sessions"].astype(float) * 100)
    axes[2].set_title("Absence by code (% of sessions)", fontsize=9)
    for a in axes:
        a.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    worst_day = days.sort_values("absence_rate", ascending=False).head(1)
    commentary = [f"{pct(bands.loc[['<50', '50-90'], 'share_of_enrolments'].astype(float).sum())} of pupils attend "
                  f"less than 90 % of the time; {pct(bands.loc[['97-99', '99-100'], 'share_of_enrolments'].astype(float).sum())} "
                  "attend 97 % or more."]
    if not worst_day.empty:
        commentary.append(f"Absence is highest on {worst_day['day_of_week'].iloc[0]}s "
                          f"({pct(worst_day['absence_rate'].iloc[0])}).")
    if not codes.empty:
        commentary.append(f"The most common absence code is {codes['attendance_code'].iloc[0]} "
                          f"({pct(codes['share_of_possible_sessions'].iloc[0])} of possible sessions).")
    pack.sections.append(Section("What patterns or trends are emerging from weekly, half-termly and annual absence data?",
                                 commentary, fig))

    # 5. Absence and attainment.
    results = pd.read_sql(sa.text(f"select * from marts.rpt_attendance_attainment where {where} "
                                  "and grouping = 'attendance_band' order by academic_year desc"), conn, params=params)
    if not results.empty:
        latest_year = results["academic_year"].max()
        results = results[(results["academic_year"] == latest_year) & (results["pupils"] >= min_group_size)]
        fig, ax = _figure(f"Outcomes by attendance band ({latest_year}/{(latest_year + 1) % 100:02d} results)")
        ks4 = results[results["key_stage"] == "KS4"].set_index("group_value").reindex(["<90", "90-95", "95-97", "97-99", "99-100"]).dropna(how="all")
        ks2 = results[results["key_stage"] == "KS2"].set_index("group_value").reindex(["<90", "90-95", "95-97", "97-99", "99-100"]).dropna(how="all")
        lines = []
        if not ks4.empty:
            ax.bar(ks4.index, ks4["english_maths_grade_4_plus_rate"].astype(float) * 100, label="KS4 English & maths 4+ %")
            lines.append("At KS4, " + "; ".join(f"{band}: Attainment 8 {float(r.average_attainment_8):.1f}"
                                                for band, r in ks4.iterrows()) + ".")
        if not ks2.empty:
            ax.plot(ks2.index, ks2["ks2_reading_writing_maths_expected_rate"].astype(float) * 100, "o-", color="darkorange",
                    label="KS2 expected standard RWM %")
            lines.append("At KS2, " + "; ".join(f"{band}: {pct(r.ks2_reading_writing_maths_expected_rate, 0)} met the "
                                                "expected standard" for band, r in ks2.iterrows()) + ".")
        ax.set_xlabel("Attendance band in the exam year")
        ax.legend(frameon=False, fontsize=8)
        pack.sections.append(Section("How does absence impact attainment?",
                                     lines or [f"Fewer than {min_group_size} pupils with results in every band."], fig))
    return pack


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def write_pack(pack: Pack, folder: Path, stem: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = [f"<html><head><meta charset='utf-8'><title>{html.escape(pack.title)}</title>"
             "<style>body{font-family:sans-serif;max-width:900px;margin:auto}h2{color:#1f4e79}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>",
             f"<h1>{html.escape(pack.title)}</h1><p>{html.escape(pack.subtitle)}</p>"]
    pdf_path, html_path = folder / f"{stem}.pdf", folder / f"{stem}.html"
    with PdfPages(pdf_path) as pdf:
        cover = plt.figure(figsize=(8.27, 11.69))
        cover.text(0.08, 0.9, pack.title, fontsize=20, weight="bold")
        cover.text(0.08, 0.86, pack.subtitle, fontsize=10, wrap=True)
        y = 0.8
        for section in pack.sections:
            cover.text(0.08, y, "Q: " + section.question, fontsize=10, weight="bold", wrap=True)
            y -= 0.03
            for line in section.commentary:
                if line:
                    cover.text(0.1, y, "• " + line, fontsize=9, wrap=True)
                    y -= 0.025
            y -= 0.02
        pdf.savefig(cover)
        plt.close(cover)
        for section in pack.sections:
            parts.append(f"<h2>{html.escape(section.question)}</h2><ul>"
                         + "".join(f"<li>{html.escape(line)}</li>" for line in section.commentary if line) + "</ul>")
            if section.figure is not None:
                pdf.savefig(section.figure)
                parts.append(f"<img alt='chart' style='max-width:100%' src='data:image/png;base64,"
                             f"{base64.b64encode(_png(section.figure)).decode()}'>")
                plt.close(section.figure)
            if section.table is not None and not section.table.empty:
                parts.append(section.table.to_html(index=False, escape=True))
    parts.append("<p><small>Aggregates only; no pupil is named. Source: trust attendance warehouse (marts).</small></p>"
                 "</body></html>")
    html_path.write_text("".join(parts), encoding="utf-8")
    return pdf_path, html_path


def build_governor_packs(period_end: dt.date, school: str = "all", config: TrustConfig | None = None,
                         min_group_size: int = DEFAULT_MIN_GROUP_SIZE) -> list[str]:
    """Write the trust's pack and each school's (or one school's) under ``outbox/governor_packs/<date>``."""
    config = config or load_trust_config()
    folder = Path(config.outbox_dir) / "governor_packs" / period_end.isoformat()
    written = []
    with engine().connect() as conn:
        targets = [("trust", None, config.name, None)] if school in ("all", "trust") else []
        targets += [("school", s.urn, s.name, s.phase) for s in config.schools if school in ("all", s.urn)]
        for scope, urn, name, phase in targets:
            pack = build_pack(conn, scope, urn, name, phase, min_group_size)
            written += [str(p) for p in write_pack(pack, folder, f"governor_pack_{urn or 'trust'}_{period_end}")]
    return written
