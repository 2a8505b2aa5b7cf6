"""scripts/bootstrap-vps.sh (issue 25.7) on a fresh Debian 12 system: the local base image
(debootstrap's minbase, as a new VPS has it) in a container, run as root.

As far as a machine without internet allows: nothing in the container reaches a network, so
the commands that would (apt-get, certbot's ACME exchange, curl) and the ones a container cannot
run (systemctl without systemd, ufw without netfilter rights, docker, make's image builds) are
stand-ins on PATH that record how they were called; certbot's stand-in writes a certificate as
certbot would. Everything else runs for real: the deploy user, the checkout, ``.env`` from
scripts/new-env.sh, the systemd unit file, the renewal hook and the certificate it installs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, working_tree_copy

pytestmark = pytest.mark.slow
IMAGE = "mediafleet-local/python:3.11-bookworm"  # scripts/docker.sh local-bases
DOMAIN, EMAIL = "media.example.org", "ops@example.org"

FAKES = {
    "apt-get": 'echo "$*" >> /log/apt-get',
    "systemctl": 'echo "$*" >> /log/systemctl',
    "ufw": 'echo "$*" >> /log/ufw',
    "curl": 'echo "$*" >> /log/curl',
    "make": 'echo "$*" >> /log/make',
    # a clone of the checkout: the copy, with a .git folder as git leaves it
    "git": 'echo "$*" >> /log/git; [ "$1" = clone ] && cp -a "$3" "$4" && mkdir -p "$4/.git"',
    "docker": (
        'echo "$*" >> /log/docker\n'
        'if [ "$1 $2" = "volume inspect" ]; then d=/var/lib/docker-volumes/${*: -1}; mkdir -p "$d"; echo "$d"; fi'
    ),
    "certbot": (
        'echo "$*" >> /log/certbot\n'
        'while [ $# -gt 0 ]; do [ "$1" = -d ] && domain=$2; shift; done\n'
        "mkdir -p /etc/letsencrypt/live/$domain\n"
        'echo "CERT for $domain" > /etc/letsencrypt/live/$domain/fullchain.pem\n'
        'echo "KEY for $domain" > /etc/letsencrypt/live/$domain/privkey.pem'
    ),
}

#: after the script: what it left on the system, into /log for the assertions
COLLECT = r"""
set +e
app=/srv/mediafleet/app
stat -c '%a %U' $app/.env > /log/env-stat; cp $app/.env /log/env
id -nG mediafleet > /log/groups
cp /etc/systemd/system/mediafleet.service /log/unit
hook=/etc/letsencrypt/renewal-hooks/deploy/mediafleet.sh
[ -x $hook ] && cp $hook /log/hook
certs=/var/lib/docker-volumes/app_certs
cat $certs/fullchain.pem > /log/installed-cert 2>/dev/null
stat -c '%a %G' $certs/privkey.pem > /log/key-stat 2>/dev/null
exit 0
"""


def run_bootstrap(tmp_path: Path, *args: str, os_release: str | None = None, twice: bool = False) -> Path:
    """The script in a fresh container; returns the folder of what it recorded and left."""
    src = tmp_path / "src"
    if not src.exists():
        working_tree_copy(src)
    fakes, log = tmp_path / "fakes", tmp_path / "log"
    shutil.rmtree(log, ignore_errors=True)
    fakes.mkdir(exist_ok=True)
    log.mkdir()
    log.chmod(0o777)  # the stand-ins also run as the deploy user
    for name, body in FAKES.items():
        (fakes / name).write_text(f"#!/bin/bash\n{body}\nexit 0\n")
        (fakes / name).chmod(0o755)
    setup = ""
    if os_release:  # another system than the image's Debian 12
        (log / "os-release").write_text(os_release + "\n")
        setup = "cp /log/os-release /etc/os-release;"
    run = f"bash /src/scripts/bootstrap-vps.sh {' '.join(args)}"
    script = (
        f"{setup} {run} > /log/out 2> /log/err; echo $? > /log/rc;"
        + (f" {run} > /log/out2 2>&1; echo $? > /log/rc2;" if twice else "")
        + COLLECT
    )
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{src}:/src:ro", "-v", f"{fakes}:/fakes:ro",
         "-v", f"{log}:/log", "-e", "PATH=/fakes:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         IMAGE, "bash", "-c", script],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return log


def read(log: Path, name: str) -> str:
    return (log / name).read_text() if (log / name).exists() else ""


@pytest.fixture
def docker_ready(servers_mode: tuple[str, str]) -> None:
    if servers_mode[0] != "container":  # CI takes the container path (tests/test_servers.py)
        pytest.skip(f"needs Docker and {IMAGE}: {servers_mode[1]}")


def test_a_fresh_debian_12_gets_the_fleet_a_certificate_and_a_firewall(
    docker_ready: None, tmp_path: Path
) -> None:
    log = run_bootstrap(tmp_path, DOMAIN, EMAIL, twice=True)
    out = read(log, "out")
    assert read(log, "rc").strip() == "0", out + read(log, "err")
    assert out.strip().splitlines()[-1].startswith(f"== mediafleet is up: https://{DOMAIN}/")

    # Debian 12's packages: Docker and Compose 1.29 from the distribution
    apt = read(log, "apt-get")
    assert "docker.io docker-compose git make ufw certbot" in apt and "docker-compose-v2" not in apt
    # the deploy user, in the docker group, owns the checkout and its .env (mode 600)
    assert "docker" in read(log, "groups").split()
    assert read(log, "env-stat").strip() == "600 mediafleet"
    env = dict(
        line.split("=", 1)
        for line in read(log, "env").splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert env["NGINX_SERVER_NAME"] == DOMAIN and env["BIND_ADDRESS"].split()[0] == "0.0.0.0"
    secrets = [env[k].split()[0] for k in ("POSTGRES_PASSWORD", "GATEWAY_SECRET_KEY", "INTERNAL_TOKEN",
                                            "GATEWAY_ADMIN_PASSWORD", "GATEWAY_INTERNALS_TOKEN")]  # fmt: skip
    assert all(len(s) >= 24 and "change-me" not in s for s in secrets), secrets
    printed = out + read(log, "err") + read(log, "out2")
    assert not [s for s in secrets if s in printed], "a secret was printed"
    # firewall: SSH, HTTP, HTTPS, nothing else (each run)
    rules = ["default deny incoming", "default allow outgoing", "allow 22/tcp", "allow 80/tcp", "allow 443/tcp",
             "--force enable"]  # fmt: skip
    assert read(log, "ufw").splitlines() == rules * 2
    # the fleet at boot, as the deploy user
    unit = read(log, "unit")
    for line in ("User=mediafleet", "WorkingDirectory=/srv/mediafleet/app",
                 "ExecStart=/usr/bin/make run-core-services run-ai-services", "ExecStop=/usr/bin/make stop",
                 "Requires=docker.service", "WantedBy=multi-user.target"):  # fmt: skip
        assert line in unit.splitlines(), line
    systemctl = read(log, "systemctl").splitlines()
    assert "enable mediafleet" in systemctl and "start mediafleet" in systemctl
    made = read(log, "make").splitlines()
    assert made[:2] == [
        "-C /srv/mediafleet/app images OFFLINE=",
        "-C /srv/mediafleet/app models MODELS_SOURCE=",
    ]
    # the certificate: certbot's webroot mode on the acme volume nginx serves, installed in the
    # certs volume by the deploy hook (the key readable by nginx's group only), nginx reloaded
    certbot = read(log, "certbot").splitlines()[0]
    assert certbot.startswith("certonly --webroot -w /var/lib/docker-volumes/app_acme")
    assert f"-d {DOMAIN} -m {EMAIL} --agree-tos --non-interactive" in certbot
    assert read(log, "installed-cert").strip() == f"CERT for {DOMAIN}"
    assert read(log, "key-stat").strip() == "640 www-data"
    assert (
        "-C /srv/mediafleet/app compose ARGS=exec -T nginx nginx -c /etc/mediafleet/nginx.conf -s reload"
        in made
    )
    assert "certbot.timer" in read(log, "systemctl")
    # the health check through the public name, answered by this host
    assert f"--resolve {DOMAIN}:443:127.0.0.1 https://{DOMAIN}/api/readyz" in read(log, "curl")
    # run again: nothing made twice, .env kept
    assert read(log, "rc2").strip() == "0" and read(log, "git").count("clone") == 1
    assert "written" not in read(log, "out2")


def test_ubuntu_24_04_gets_compose_v2(docker_ready: None, tmp_path: Path) -> None:
    ubuntu = 'PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nVERSION_ID="24.04"'
    log = run_bootstrap(tmp_path, DOMAIN, EMAIL, os_release=ubuntu)
    assert read(log, "rc").strip() == "0", read(log, "err")
    assert "docker.io docker-compose-v2 git" in read(log, "apt-get")


@pytest.mark.parametrize(
    ("args", "os_release", "says"),
    [
        ((), None, "usage: "),
        (("not_a_domain", EMAIL), None, "is not a domain name"),
        ((DOMAIN, "nobody"), None, "is not an e-mail address"),
        (
            (DOMAIN, EMAIL),
            'PRETTY_NAME="CentOS Stream 9"\nID=centos\nVERSION_ID="9"',
            "is not Debian 12 or Ubuntu 24.04",
        ),
    ],
)
def test_refuses_with_one_line_before_changing_anything(
    docker_ready: None, tmp_path: Path, args: tuple[str, ...], os_release: str | None, says: str
) -> None:
    log = run_bootstrap(tmp_path, *args, os_release=os_release)
    assert read(log, "rc").strip() == "1"
    err = read(log, "err").strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert read(log, "apt-get") == "" and read(log, "ufw") == ""


def test_the_script_is_shellcheck_clean() -> None:
    assert shutil.which("shellcheck"), "shellcheck missing: bash scripts/install-system-deps.sh"
    checked = subprocess.run(
        ["shellcheck", "scripts/bootstrap-vps.sh", "scripts/backup.sh", "monitoring/prometheus/start.sh"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout
