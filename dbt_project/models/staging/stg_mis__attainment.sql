select
    school_urn,
    pupil_id,
    academic_year,
    key_stage,
    attainment_8,
    progress_8,
    english_maths_grade_4_plus,
    english_maths_grade_5_plus,
    ks2_reading_writing_maths_expected,
    extract_date
from {{ source('mis', 'attainment') }}
