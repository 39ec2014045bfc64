"""The synthetic trust is deterministic and looks like a real one."""
from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd
import pytest

from trust_attendance.codes import code_table
from trust_attendance.demo import generate_trust

AS_OF = dt.date(2026, 7, 20)  # a full academic year (2025/26) of registers


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.csv"))}


@pytest.fixture(scope="module")
def trust(tmp_path_factory):
    out = tmp_path_factory.mktemp("trust")
    manifest = generate_trust(out, n_schools=4, seed=11, as_of=AS_OF, history_years=1, progress=False)
    marks = pd.concat(pd.read_csv(p, dtype=str, keep_default_na=False) for p in out.glob("drop/*/*/marks.csv"))
    pupils = pd.concat(pd.read_csv(p, dtype=str, keep_default_na=False) for p in out.glob("drop/*/*/pupils.csv"))
    return out, manifest, marks, pupils


def test_same_seed_same_files(tmp_path):
    a = generate_trust(tmp_path / "a", n_schools=2, seed=3, as_of=dt.date(2026, 10, 2), history_years=1, progress=False)
    b = generate_trust(tmp_path / "b", n_schools=2, seed=3, as_of=dt.date(2026, 10, 2), history_years=1, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    c = generate_trust(tmp_path / "c", n_schools=2, seed=4, as_of=dt.date(2026, 10, 2), history_years=1, progress=False)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert a["schools"].keys() == b["schools"].keys() == c["schools"].keys()


def test_manifest_counts_match_the_files(trust):
    out, manifest, marks, pupils = trust
    for urn, school in manifest["schools"].items():
        assert (marks["school_urn"] == urn).sum() == school["marks"]
        assert (pupils["school_urn"] == urn).sum() == school["pupils"]


def test_mixed_phases_and_characteristics_near_national(trust):
    _, manifest, _, pupils = trust
    assert {s["phase"] for s in manifest["schools"].values()} == {"primary", "secondary", "special"}
    share = lambda col, value: (pupils[col] == value).mean()  # noqa: E731
    assert 0.22 <= share("pupil_premium", "Y") <= 0.36
    assert 0.08 <= share("sen_provision", "K") <= 0.18
    assert 0.025 <= share("sen_provision", "E") <= 0.12  # a special school lifts EHC plans
    assert 0.15 <= share("eal", "Y") <= 0.25


def test_attendance_figures_land_near_national(trust):
    """Absence ~7 %, PA ~20 %, SA ~2 % (rules doc, 2023/24), with a visible PP gap."""
    _, _, marks, pupils = trust
    in_force = {c.code: c.category for c in code_table() if c.valid_on(AS_OF)}
    marks = marks[marks["mark"] != ""].assign(category=lambda m: m["mark"].map(in_force))
    possible = marks[~marks["category"].isin(["not_counted"])]
    per_pupil = possible.groupby("pupil_id").agg(
        possible=("category", "size"),
        absent=("category", lambda c: c.isin(["authorised_absence", "unauthorised_absence"]).sum()),
    ).join(pupils.set_index("pupil_id")["pupil_premium"])
    rate = per_pupil["absent"] / per_pupil["possible"]
    overall = per_pupil["absent"].sum() / per_pupil["possible"].sum()
    assert 0.05 <= overall <= 0.095
    assert 0.14 <= (rate >= 0.10).mean() <= 0.27
    assert 0.008 <= (rate >= 0.50).mean() <= 0.045
    pp = per_pupil.groupby("pupil_premium").apply(lambda g: g["absent"].sum() / g["possible"].sum())
    assert pp["Y"] - pp["N"] > 0.02


def test_code_mix_is_realistic(trust):
    _, _, marks, _ = trust
    codes = set(marks["mark"])
    assert {"/", "\\", "I", "M", "O", "G", "N", "U", "L", "V", "#"} <= codes
    assert marks["mark"].value_counts(normalize=True)["I"] > marks["mark"].value_counts(normalize=True)["O"]


def test_injected_defects_are_recorded(trust):
    _, manifest, marks, _ = trust
    schools = list(manifest["schools"].values())
    missing = schools[0]["missing_marks"]
    assert missing["count"] > 0
    assert (marks["mark"] == "").sum() == missing["count"]
    invalid = schools[-1]["invalid_code"]
    assert (marks["mark"] == invalid["code"]).sum() == 1


def test_attainment_falls_with_absence(tmp_path):
    """KS4 results exist for last year's Year 11 and fall with that year's absence."""
    out = tmp_path / "trust"
    generate_trust(out, n_schools=2, seed=5, as_of=dt.date(2026, 10, 9), history_years=2, progress=False)
    codes = {c.code: c.category for c in code_table() if c.valid_on(AS_OF)}
    ks4 = []
    for folder in out.glob("drop/*/*"):
        results = pd.read_csv(folder / "attainment.csv", dtype=str, keep_default_na=False)
        marks = pd.read_csv(folder / "marks.csv", dtype=str, keep_default_na=False)
        marks = marks[(marks["session_date"] >= "2025-09-01") & (marks["session_date"] < "2026-09-01")]
        marks = marks.assign(category=marks["mark"].map(codes)).dropna(subset=["category"])
        marks = marks[marks["category"] != "not_counted"]
        absence = marks.groupby("pupil_id")["category"].apply(
            lambda c: c.isin(["authorised_absence", "unauthorised_absence"]).mean())
        ks4.append(results[results["key_stage"] == "KS4"].assign(absence=lambda r: r["pupil_id"].map(absence)))
    ks4 = pd.concat(ks4)
    assert len(ks4) > 50
    assert (ks4["academic_year"] == "2025").all() and (ks4["progress_8"] == "").all()  # no P8 for 2025/26
    a8 = ks4["attainment_8"].astype(float)
    persistent = ks4["absence"] >= 0.10
    assert a8[persistent].mean() < a8[~persistent].mean() - 5


def test_defects_land_on_an_open_day_when_the_last_day_was_a_closure(tmp_path):
    # With the default demo seed, 24 Nov 2026 was a closure day ('#' for everyone) at the
    # last school, so a defect put on the last day would silently not be injected.
    manifest = generate_trust(tmp_path, n_schools=6, seed=2026, as_of=dt.date(2026, 11, 24), history_years=2,
                              progress=False)
    last = list(manifest["schools"].values())[-1]
    marks = pd.read_csv(tmp_path / last["extract_folder"] / "marks.csv", dtype=str, keep_default_na=False)
    assert set(marks.loc[marks["session_date"] == "2026-11-24", "mark"]) == {"#"}
    invalid = last["invalid_code"]
    assert invalid["date"] < "2026-11-24"
    assert marks.iloc[invalid["line"] - 2]["mark"] == invalid["code"]  # line 1 is the header
    assert list(manifest["schools"].values())[0]["missing_marks"]["count"] > 0


def test_a_pupil_target_scales_the_cohorts(tmp_path):
    # The large preset asks for 80,000 pupils on roll over 100 schools; the same scaling on
    # 6 schools (3 primary, 2 secondary, 1 special) asked for 4,800 (80,000 x 6 / 100) should
    # land within 10 % of it (the scale counts each school's year groups, sixth form or not;
    # cohort sizes, joiners and leavers are random), and well above their usual size.
    usual = generate_trust(tmp_path / "usual", n_schools=6, seed=5, as_of=dt.date(2026, 10, 2), history_years=1,
                           defects=False, progress=False)
    scaled = generate_trust(tmp_path / "scaled", n_schools=6, seed=5, as_of=dt.date(2026, 10, 2), history_years=1,
                            defects=False, progress=False, pupils_on_roll=4_800)
    on_roll = sum(s["pupils_on_roll"] for s in scaled["schools"].values())
    assert abs(on_roll - 4_800) <= 480, on_roll
    assert on_roll > 1.2 * sum(s["pupils_on_roll"] for s in usual["schools"].values())
