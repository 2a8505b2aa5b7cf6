"""Real Redis and PostgreSQL servers for the tests.

The fleet's own server images through testcontainers (the images docker-compose.yml
runs; ``REDIS_IMAGE`` / ``POSTGRES_IMAGE`` name the locally built stand-ins where no
registry is reachable), or, on a machine without Docker, Debian's redis-server and
PostgreSQL as local processes (:func:`server_mode`). Never a server someone left running:
each test session starts its own on a free port and stops it at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class RedisServer:
    kind = "process"

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: run `make test` (it installs Debian's redis-server)"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="mf-redis-"))
        self.port = free_port()
        self.binary = binary
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # AOF on, like the fleet: a restart keeps acknowledged work.
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def version(self) -> str:
        import redis

        return redis.Redis.from_url(self.url).info("server")["redis_version"]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError("PostgreSQL is not installed: run `make test` (it installs Debian's postgresql)")
    return path


class PostgresServer:
    """A throw-away cluster (initdb) run as the ``postgres`` user when the tests run as root."""

    kind = "process"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mf-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.user = "postgres" if self.as_user else pwd.getpwuid(os.geteuid()).pw_name

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                [
                    *self.as_user,
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    self.user,
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        subprocess.run(
            [
                *self.as_user,
                _pg_bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.dir / "log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, _pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def version(self) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres") as c:
            return c.execute("SHOW server_version").fetchone()[0]

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- the same servers from the fleet's own images (testcontainers) -------------------------
ROOT = Path(__file__).resolve().parents[1]
MODE_ENV = "MEDIAFLEET_TEST_SERVERS"  # auto (default) | container | process


def compose_image(var: str) -> str:
    """The image docker-compose.yml runs for ``${var:-default}``, or ``$var`` when set (as compose does)."""
    import re

    text = (ROOT / "docker-compose.yml").read_text()
    default = re.search(r"\$\{" + var + r":-([^}]+)\}", text)
    if default is None:
        raise RuntimeError(f"docker-compose.yml names no ${{{var}:-...}} image")
    return os.environ.get(var) or default.group(1)


def _docker():
    import docker

    client = docker.from_env(timeout=10)
    client.ping()
    return client


def _image_available(client, image: str) -> bool:
    import docker.errors

    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
        return True
    except docker.errors.DockerException:
        return False


def server_mode() -> tuple[str, str]:
    """``("container" | "process", why)`` for this test session.

    ``MEDIAFLEET_TEST_SERVERS=container`` (CI) insists on containers; ``process`` forces
    Debian's local servers; ``auto`` takes containers when a Docker daemon answers and the
    compose images are present or pullable, and falls back to local processes otherwise.
    """
    want = os.environ.get(MODE_ENV, "auto")
    if want == "process":
        return "process", f"{MODE_ENV}=process"
    images = [compose_image("REDIS_IMAGE"), compose_image("POSTGRES_IMAGE")]
    try:
        client = _docker()
        missing = [i for i in images if not _image_available(client, i)]
        problem = f"images not available and not pullable: {missing}" if missing else None
    except Exception as exc:  # no daemon, no socket, no SDK: all mean "no Docker here"
        problem = f"no Docker daemon answers ({type(exc).__name__})"
    if problem is None:
        return "container", f"images {', '.join(images)}"
    if want == "container":
        raise RuntimeError(f"{MODE_ENV}=container, but {problem}")
    return "process", f"{problem}: falling back to local redis-server/postgres processes"


def _publish_on_loopback(container, port: int, host_port: int) -> None:
    # with_bind_ports() takes a port only (it would publish on 0.0.0.0); docker-py's run(ports=)
    # also takes (host_ip, host_port), which is what testcontainers passes its ports dict to.
    container.ports[str(port)] = ("127.0.0.1", host_port)


# Published on loopback only, so that is where the servers are. testcontainers would otherwise
# take this VM for a container and connect to the docker bridge gateway (both are read when
# testcontainers is imported).
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")


class RedisContainerServer:
    """Redis from the compose image, published on 127.0.0.1 only."""

    kind = "container"

    def __init__(self) -> None:
        self.image = compose_image("REDIS_IMAGE")
        self.port = free_port()
        self.container = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from testcontainers.community.redis import RedisContainer

        self.container = RedisContainer(self.image)
        _publish_on_loopback(self.container, 6379, self.port)
        self.container.start()

    def running(self) -> bool:
        if self.container is None:
            return False
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        return wrapped.status == "running"

    def version(self) -> str:
        import redis

        return redis.Redis.from_url(self.url).info("server")["redis_version"]

    def cleanup(self) -> None:
        if self.container is not None:
            self.container.stop()


class PostgresContainerServer:
    """PostgreSQL from the compose image, published on 127.0.0.1 only."""

    kind = "container"
    password = "mediafleet-test"

    def __init__(self) -> None:
        self.image = compose_image("POSTGRES_IMAGE")
        self.port = free_port()
        self.container = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        from testcontainers.community.postgres import PostgresContainer

        self.container = PostgresContainer(
            self.image, username="postgres", password=self.password, dbname="postgres", driver="psycopg"
        )
        _publish_on_loopback(self.container, 5432, self.port)
        self.container.start()

    def create_database(self, name: str) -> str:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user=postgres password={self.password} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def version(self) -> str:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user=postgres password={self.password} dbname=postgres"
        with psycopg.connect(dsn) as c:
            return c.execute("SHOW server_version").fetchone()[0]

    def cleanup(self) -> None:
        if self.container is not None:
            self.container.stop()


def _pg_version(words: list[str]) -> str:
    """``postgres (PostgreSQL) 15.18 (Debian ...)`` -> ``15.18``."""
    return words[words.index("(PostgreSQL)") + 1] if "(PostgreSQL)" in words else "?"


def image_versions(mode: str) -> str:
    """One line naming the servers' versions and where they come from (the test header)."""
    if mode == "process":
        redis_v = subprocess.run([shutil.which("redis-server") or "redis-server", "--version"],
                                 capture_output=True, text=True).stdout.split()  # fmt: skip
        pg_v = subprocess.run(
            [_pg_bin("postgres"), "--version"], capture_output=True, text=True
        ).stdout.split()
        redis_ver = next((w[2:] for w in redis_v if w.startswith("v=")), "?")
        return f"redis {redis_ver} (local process), postgres {_pg_version(pg_v)} (local process)"
    client = _docker()
    out = []
    for name, var, cmd in (("redis", "REDIS_IMAGE", ["redis-server", "--version"]),
                           ("postgres", "POSTGRES_IMAGE", ["postgres", "--version"])):  # fmt: skip
        image = compose_image(var)
        text = client.containers.run(image, cmd[1:], entrypoint=cmd[0], remove=True).decode().split()
        version = next((w[2:] for w in text if w.startswith("v=")), None) or _pg_version(text)
        out.append(f"{name} {version} (container {image})")
    return ", ".join(out)
