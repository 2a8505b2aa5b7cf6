"""make env (scripts/new-env.sh): a new .env gets generated secrets; an existing one is kept and
gains only the secrets a newer version needs (the Redis users of an upgrade)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REDIS_KEYS = (
    "REDIS_GATEWAY_PASSWORD",
    "REDIS_JOB_MANAGER_PASSWORD",
    "REDIS_WORKER_PASSWORD",
    "REDIS_EXPORTER_PASSWORD",
)
ADDED = (*REDIS_KEYS, "MEDIA_URL_SECRET")


def values(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)=(\S*)", path.read_text(), flags=re.M))


def run(tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(tmp / "scripts/new-env.sh")], capture_output=True, text=True, check=True
    )


def test_a_new_env_and_an_upgraded_one(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts/new-env.sh", tmp_path / "scripts")
    shutil.copy(ROOT / ".env.example", tmp_path)
    run(tmp_path)
    env = values(tmp_path / ".env")
    example = values(tmp_path / ".env.example")
    for key in REDIS_KEYS:
        assert re.fullmatch(r"[0-9a-f]{32}", env[key]), key  # what services/redis/start.sh accepts
        assert env[key] != example[key]
    assert len({env[k] for k in REDIS_KEYS}) == len(REDIS_KEYS)

    # an .env from before the Redis users: they are added, nothing else changes
    old = "".join(line for line in (tmp_path / ".env").read_text().splitlines(keepends=True)
                  if not line.startswith(ADDED))  # fmt: skip
    old += "REDIS_EXPORTER_PASSWORD=\n"  # present but empty: generated too
    (tmp_path / ".env").write_text(old)
    out = run(tmp_path)
    assert out.stdout.strip() == f".env exists: added {' '.join(ADDED)} (generated); the rest kept as it is"
    upgraded = values(tmp_path / ".env")
    assert {k: v for k, v in upgraded.items() if k not in ADDED} == {
        k: v for k, v in env.items() if k not in ADDED
    }
    assert all(re.fullmatch(r"[0-9a-f]{32}", upgraded[k]) for k in REDIS_KEYS)
    assert re.fullmatch(r"[0-9a-f]{32,}", upgraded["MEDIA_URL_SECRET"])
    assert run(tmp_path).stderr.strip() == ".env exists: kept as it is (FORCE=1 make env writes a new one)"
    assert values(tmp_path / ".env") == upgraded
