"""Where the project keeps things on disk."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
CODE_SEED = DBT_PROJECT_DIR / "seeds" / "attendance_codes.csv"


def var_dir() -> Path:
    """Git-ignored folder for everything generated at run time."""
    return Path(os.environ.get("TRUST_VAR_DIR", PROJECT_ROOT / "var")).resolve()
