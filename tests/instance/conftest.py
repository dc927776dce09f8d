"""A throwaway PostgreSQL server for the instance tests: Debian's binaries, a private data dir, 127.0.0.1 only.

The server speaks TLS with a self-signed certificate made here, so `sslmode: require` in
infra/azure/dagster.yaml is tested as Azure sees it. As root (CI), the server runs as the
`postgres` user that Debian's package creates: PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import datetime
import glob
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_USER = "postgres"  # created by Debian's postgresql-common


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    db_name: str
    socket_dir: str  # the Unix socket's folder (libpq's `host` for a socket)

    def dagster_env(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables that infra/azure/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db_name,
        }

    def connect(self):
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            dbname=self.db_name, sslmode="require",
        )


def _binaries() -> Path | None:
    """The newest /usr/lib/postgresql/<N>/bin that has initdb, pg_ctl and postgres."""
    def version(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/bin/", path)
        return int(match.group(1)) if match else -1

    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists() and (bindir / "postgres").exists():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_self_signed_cert(cert: Path, key: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)  # PostgreSQL refuses a key that others can read


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own for the test session, with a database and a password user; removed after."""
    bindir = _binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin; Debian: apt-get install postgresql)")
    as_root = os.geteuid() == 0
    run_as: dict = {}
    if as_root:
        try:
            account = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"running as root and there is no '{SERVER_USER}' user to run PostgreSQL as")
        run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    # Not under pytest's tmp dir: that is 0700 root's, and the server user could not enter it. mkdtemp makes a 0700
    # dir in /tmp; as root it is handed to the server user, so it alone (and root) reads the data, key and socket.
    base = Path(tempfile.mkdtemp(prefix="movierec-pg-"))
    data = base / "data"
    superuser_password = secrets.token_urlsafe(16)
    server = PostgresServer(
        host="127.0.0.1", port=_free_port(), user="movierec_dagster",
        password=secrets.token_urlsafe(16), db_name="dagster_test", socket_dir=str(base),
    )

    def run(*args: str | Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in args], cwd=base, capture_output=True, text=True, check=False, **run_as)

    started = False
    try:
        pwfile = base / "superuser-password"
        pwfile.touch(mode=0o600)
        pwfile.write_text(superuser_password + "\n")
        _write_self_signed_cert(base / "server.crt", base / "server.key")
        if as_root:
            for path in (base, pwfile, base / "server.crt", base / "server.key"):
                os.chown(path, account.pw_uid, account.pw_gid)

        initdb = run(
            bindir / "initdb", "-D", data, "-U", "postgres", f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )
        if initdb.returncode != 0:
            pytest.fail(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
        pwfile.unlink()
        # Only TLS connections from 127.0.0.1, by password; the Unix socket sits in the private dir.
        (data / "pg_hba.conf").write_text(
            "local all all scram-sha-256\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# tests/instance/conftest.py\n"
                f"listen_addresses = '127.0.0.1'\nport = {server.port}\n"
                f"unix_socket_directories = '{base}'\n"
                f"ssl = on\nssl_cert_file = '{base / 'server.crt'}'\nssl_key_file = '{base / 'server.key'}'\n"
                # A throwaway server: no durability needed, so nothing waits on the disk.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )

        start = run(bindir / "pg_ctl", "start", "-D", data, "-l", base / "server.log", "-w", "-t", "30")
        started = start.returncode == 0
        if not started:
            log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
            pytest.fail(f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{log}")

        import psycopg2
        from psycopg2 import sql

        admin = psycopg2.connect(
            host=server.host, port=server.port, user="postgres", password=superuser_password,
            dbname="postgres", sslmode="require",
        )
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(server.user)), [server.password]
            )
            cursor.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(server.db_name), sql.Identifier(server.user))
            )
        admin.close()

        yield server
    finally:
        if started:
            run(bindir / "pg_ctl", "stop", "-D", data, "-m", "fast", "-w", "-t", "30")
        shutil.rmtree(base, ignore_errors=True)
