"""The export layout every source is converted to (README, "CSV export drop"):
the columns of each file, in order. Validation, loading and the demo generator
all read it from here."""
from __future__ import annotations

from .ctf import MARK_COLUMNS as TRANSFER_MARK_COLUMNS
from .ctf import YEAR_COLUMNS as TRANSFER_YEAR_COLUMNS

MARK_COLUMNS = ["school_urn", "pupil_id", "session_date", "session", "mark", "minutes_late", "comment"]
PUPIL_COLUMNS = [
    "school_urn", "pupil_id", "upn", "legal_forename", "legal_surname", "date_of_birth", "sex", "ethnicity",
    "year_group", "form", "pupil_premium", "fsm", "fsm6", "sen_provision", "eal", "looked_after",
    "previously_looked_after", "child_in_need", "child_protection_plan",
]
ENROLMENT_COLUMNS = ["school_urn", "pupil_id", "admission_date", "leaving_date", "enrolment_status"]
ATTAINMENT_COLUMNS = [
    "school_urn", "pupil_id", "academic_year", "key_stage", "attainment_8", "progress_8",
    "english_maths_grade_4_plus", "english_maths_grade_5_plus", "ks2_reading_writing_maths_expected",
]

# Files a school sends (CSV), and the files derived from its Common Transfer Files.
EXPORT_FILES = {
    "marks.csv": MARK_COLUMNS,
    "pupils.csv": PUPIL_COLUMNS,
    "enrolments.csv": ENROLMENT_COLUMNS,
    "attainment.csv": ATTAINMENT_COLUMNS,
}
OPTIONAL_FILES = {"attainment.csv"}
DERIVED_FILES = {"transfer_attendance.csv": TRANSFER_YEAR_COLUMNS, "transfer_marks.csv": TRANSFER_MARK_COLUMNS}
