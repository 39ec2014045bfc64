"""Trust configuration: which schools, where their data comes from, who hears about it.

One YAML file per trust (path in ``TRUST_CONFIG``; the demo writes its own).
Secrets never live in this file: a source names an Airflow connection or an
environment variable that holds them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .paths import var_dir

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is optional in PyYAML
PHASES = ("primary", "secondary", "special")


class ConfigError(ValueError):
    pass


def hide_in_logs(*secrets: str | None) -> None:
    """Have Airflow mask these values wherever they would appear in a task's log.

    Connection passwords Airflow reads itself are masked already; secrets the
    pipeline reads from the environment are not until registered here. Outside
    Airflow (the CLI, tests, benchmarks) nothing writes task logs, so this is a no-op.
    """
    import sys

    if "airflow.sdk" not in sys.modules:
        return
    from airflow.sdk.log import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


@dataclass(frozen=True)
class School:
    urn: str
    name: str
    phase: str
    la_code: str
    source: dict
    lead_contacts: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrustConfig:
    name: str
    schools: tuple[School, ...]
    path: Path
    outbox_dir: Path = field(default_factory=lambda: var_dir() / "outbox")
    landing_dir: Path = field(default_factory=lambda: var_dir() / "landing")
    quarantine_dir: Path = field(default_factory=lambda: var_dir() / "quarantine")
    data_team_contacts: tuple[str, ...] = ()

    def school(self, urn: str) -> School:
        for school in self.schools:
            if school.urn == urn:
                return school
        raise ConfigError(f"school URN {urn} is not in trust config {self.path}")


def default_config_path() -> Path:
    return Path(os.environ.get("TRUST_CONFIG", var_dir() / "demo" / "trust.yml"))


def load_trust_config(path: str | Path | None = None) -> TrustConfig:
    path = Path(path) if path else default_config_path()
    if not path.exists():
        raise ConfigError(f"trust config not found: {path} (set TRUST_CONFIG or run `make demo`)")
    # libyaml's safe loader where PyYAML has it: every school's task reads the whole trust's
    # config, and the pure-Python one took 15 ms a read at 20 schools (libyaml: 1.7 ms).
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
    base = path.parent

    def resolve(value: str | None, default: Path) -> Path:
        return (base / value).resolve() if value else default

    schools = []
    seen = set()
    for i, raw in enumerate(doc.get("schools") or []):
        try:
            urn = str(raw["urn"])
            phase = raw["phase"]
            source = dict(raw["source"])
        except KeyError as missing:
            raise ConfigError(f"{path}: school #{i + 1} lacks {missing}") from None
        if phase not in PHASES:
            raise ConfigError(f"{path}: school {urn} has phase {phase!r}, expected one of {PHASES}")
        if urn in seen:
            raise ConfigError(f"{path}: school {urn} is listed twice")
        seen.add(urn)
        if "path" in source:
            source["path"] = str(resolve(source["path"], base))
        schools.append(
            School(
                urn=urn,
                name=raw.get("name", urn),
                phase=phase,
                la_code=str(raw.get("la_code", "")),
                source=source,
                lead_contacts=tuple(raw.get("lead_contacts") or ()),
            )
        )
    if not schools:
        raise ConfigError(f"{path}: no schools configured")
    outputs = doc.get("outputs") or {}
    return TrustConfig(
        name=doc.get("trust_name", "Trust"),
        schools=tuple(schools),
        path=path,
        outbox_dir=resolve(outputs.get("outbox_dir"), var_dir() / "outbox"),
        landing_dir=resolve(outputs.get("landing_dir"), var_dir() / "landing"),
        quarantine_dir=resolve(outputs.get("quarantine_dir"), var_dir() / "quarantine"),
        data_team_contacts=tuple(doc.get("data_team_contacts") or ()),
    )


def task_retries() -> tuple[int, int]:
    """(retries, seconds between them) for pipeline tasks: TRUST_TASK_RETRIES, TRUST_RETRY_DELAY_SECONDS."""
    return int(os.environ.get("TRUST_TASK_RETRIES", "2")), int(os.environ.get("TRUST_RETRY_DELAY_SECONDS", "300"))
