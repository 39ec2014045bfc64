"""Pulling a school's registers from its MIS into the landing area.

Each connector copies what it pulled, untouched, to
``<landing>/<urn>/<extract date>/`` with a checksum manifest: the landing copy
is immutable evidence of what the school sent, and what validation and
quarantine refer to.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .config import School
from .export_layout import EXPORT_FILES, OPTIONAL_FILES


class ExtractError(RuntimeError):
    """The school's data could not be pulled: nothing lands, the school is marked failed."""


@dataclass(frozen=True)
class LandedBatch:
    school_urn: str
    extract_date: dt.date
    folder: Path

    def file(self, name: str) -> Path:
        return self.folder / name

    def to_dict(self) -> dict:
        return {"school_urn": self.school_urn, "extract_date": self.extract_date.isoformat(), "folder": str(self.folder)}

    @classmethod
    def from_dict(cls, d: dict) -> "LandedBatch":
        return cls(d["school_urn"], dt.date.fromisoformat(d["extract_date"]), Path(d["folder"]))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _staging(landing_root: Path, school_urn: str, extract_date: dt.date, fresh: bool = True) -> Path:
    """The folder a batch is assembled in before it is published as landed."""
    staging = landing_root / school_urn / f"{extract_date.isoformat()}.partial"
    if fresh and staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    return staging


def _publish(staging: Path, school: School, extract_date: dt.date) -> LandedBatch:
    """Checksum every file, then move the batch into place in one rename."""
    manifest = {"school_urn": school.urn, "extract_date": extract_date.isoformat(), "source": school.source["type"],
                "landed_at": dt.datetime.now(dt.timezone.utc).isoformat(), "files": {}}
    for path in sorted(p for p in staging.rglob("*") if p.is_file() and p.name != "manifest.json"):
        manifest["files"][path.relative_to(staging).as_posix()] = {"sha256": sha256(path), "bytes": path.stat().st_size}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    folder = staging.with_name(extract_date.isoformat())
    if folder.exists():  # a re-run of the same night replaces its landing copy
        shutil.rmtree(folder)
    staging.rename(folder)  # atomic: a half-copied batch is never seen as landed
    return LandedBatch(school.urn, extract_date, folder)


def _land(school: School, extract_date: dt.date, files: dict[str, Path], landing_root: Path) -> LandedBatch:
    staging = _staging(landing_root, school.urn, extract_date)
    for name, src in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, staging / name)
    return _publish(staging, school, extract_date)


def extract_csv_drop(school: School, extract_date: dt.date, landing_root: Path) -> LandedBatch:
    """A folder where the school's MIS export lands each night: ``<path>/<YYYY-MM-DD>/*.csv``."""
    export = Path(school.source["path"]) / extract_date.isoformat()
    if not export.is_dir():
        raise ExtractError(f"school {school.urn} ({school.name}): no export for {extract_date} in {export}")
    missing = [name for name in EXPORT_FILES if name not in OPTIONAL_FILES and not (export / name).is_file()]
    if missing:
        raise ExtractError(f"school {school.urn} ({school.name}): export {export} lacks {', '.join(missing)}")
    files = {name: export / name for name in EXPORT_FILES if (export / name).is_file()}
    # Common Transfer Files for pupils who joined with history, if the school sent any.
    files.update({f"ctf/{p.name}": p for p in sorted((export / "ctf").glob("*.xml"))})
    return _land(school, extract_date, files, landing_root)


def extract_vendor_api(school: School, extract_date: dt.date, landing_root: Path) -> LandedBatch:
    """A data broker's REST API (Wonde-style): paginated pupils and attendance sessions.

    Every page is kept as received under ``api/`` and converted to the export
    layout, so validation, quarantine and load treat it like any other batch.
    A retried task resumes from the last page saved (the cursor in the
    staging folder) instead of starting again.
    """
    from .vendor_api import fetch_school

    staging = _staging(landing_root, school.urn, extract_date, fresh=False)
    fetch_school(school, extract_date, staging)
    return _publish(staging, school, extract_date)


CONNECTORS = {"csv_drop": extract_csv_drop, "vendor_api": extract_vendor_api}


def extract(school: School, extract_date: dt.date, landing_root: Path) -> LandedBatch:
    source_type = school.source.get("type")
    try:
        connector = CONNECTORS[source_type]
    except KeyError:
        raise ExtractError(f"school {school.urn}: unknown source type {source_type!r}; known: {sorted(CONNECTORS)}") from None
    return connector(school, extract_date, landing_root)
