from __future__ import annotations

import os
import socket
import threading

import pytest
import sqlalchemy as sa

from trust_attendance.warehouse import (BIND_ATTEMPTS, DBT_SESSION_OPTIONS, EmbeddedPostgres, WarehouseError, dbt_env,
                                        free_port, masked)


def test_embedded_postgres_starts_stops_and_keeps_its_data(isolated_var_dir):
    tmp_path = isolated_var_dir / "restart-test"
    server = EmbeddedPostgres(root=tmp_path / "pg", port=free_port())
    url = server.start()
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("create table kept (n int)"))
        conn.execute(sa.text("insert into kept values (42)"))
    server.stop()
    assert not server.is_running()
    server.start()  # restart reuses the cluster, the password and the port
    with sa.create_engine(server.url).connect() as conn:
        assert conn.execute(sa.text("select n from kept")).scalar() == 42
    server.stop()
    # The password file is private to its owner; as root, only the data folders change owner.
    assert oct((tmp_path / "pg" / "admin-password").stat().st_mode & 0o777) == "0o600"
    if os.geteuid() == 0:
        assert (tmp_path / "pg" / "data").stat().st_uid != 0
        assert (tmp_path / "pg").stat().st_uid == 0


def test_embedded_postgres_requires_a_password_over_tcp(postgres_server):
    wrong = postgres_server.url.replace(f":{postgres_server.password}@", ":wrong@")
    try:
        sa.create_engine(wrong).connect()
    except sa.exc.OperationalError as exc:
        assert "password authentication failed" in str(exc)
    else:
        raise AssertionError("connected with a wrong password")


def test_dbt_env_and_masking_keep_the_password_out_of_messages():
    url = "postgresql://loader:s3cret@db.example.org:6543/warehouse"
    assert dbt_env(url) == {"WAREHOUSE_HOST": "db.example.org", "WAREHOUSE_PORT": "6543",
                            "WAREHOUSE_USER": "loader", "WAREHOUSE_PASSWORD": "s3cret",
                            "WAREHOUSE_DBNAME": "warehouse", "PGOPTIONS": DBT_SESSION_OPTIONS}
    assert masked(url) == "postgresql://loader:***@db.example.org:6543/warehouse"


def test_embedded_postgres_waits_out_a_port_held_for_a_moment(isolated_var_dir):
    # A socket bound to the port but not listening, as an outgoing connection's is: the pre-start
    # check (nothing answers) passes and PostgreSQL cannot bind. Held for 2 s, the start waits it out;
    # held throughout, it fails naming the port and the setting to change.
    port = free_port()
    server = EmbeddedPostgres(root=isolated_var_dir / "held-port" / "pg", port=port)
    server.initialise()

    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    with pytest.raises(WarehouseError, match=f"port {port} was still in use after {BIND_ATTEMPTS} tries.*WAREHOUSE_PORT"):
        server.start()
    assert not server.is_running()

    release = threading.Timer(2.0, holder.close)
    release.start()
    try:
        url = server.start()
        with sa.create_engine(url).connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1
    finally:
        release.cancel()
        holder.close()
        server.stop()
