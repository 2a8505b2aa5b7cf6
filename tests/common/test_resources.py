"""CPU limit from the cgroup quota (what compose's ``cpus:`` writes), not the host's core count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mediafleet.common.resources import THREAD_VARIABLES, apply_thread_limits, cgroup_quota, cpu_limit

CORES = len(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def environment_before() -> dict[str, str | None]:
    """The thread variables as they were before this file's first test (another file's test may
    have set them earlier in the same process, e.g. an in-process runner)."""
    return {name: os.environ.get(name) for name in THREAD_VARIABLES}


@pytest.fixture(autouse=True)
def _snapshot(environment_before: dict[str, str | None]) -> None:
    """Taken before the first test of this file runs."""


def cgroup(tmp_path: Path, v2: str | None = None, v1: tuple[str, str] | None = None) -> Path:
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(v1[0] + "\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(v1[1] + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("v2", "v1", "quota"),
    [
        ("200000 100000", None, 2.0),  # cgroup v2, compose cpus: 2.0
        ("50000 100000", None, 0.5),
        ("max 100000", None, None),  # unlimited
        (None, ("150000", "100000"), 1.5),  # cgroup v1
        (None, ("-1", "100000"), None),
        (None, None, None),  # no cgroup files: unknown
        ("garbage", None, None),
    ],
)
def test_quota(tmp_path: Path, v2: str | None, v1: tuple[str, str] | None, quota: float | None) -> None:
    assert cgroup_quota(cgroup(tmp_path, v2, v1)) == quota


def test_limit_is_the_quota_rounded_up_within_the_cores(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / name).mkdir()
    assert cpu_limit(cgroup(tmp_path / "a", "50000 100000")) == 1  # half a CPU still needs a thread
    assert cpu_limit(cgroup(tmp_path / "b", "1000000 100000")) == CORES  # a quota above the cores
    assert cpu_limit(cgroup(tmp_path / "c", "max 100000")) == CORES


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables absent during the test and restored after it: set first, so monkeypatch
    records their state and undoes what apply_thread_limits writes (a thread limit of 1 left in
    os.environ would slow every later test's fleet)."""
    for name in (*THREAD_VARIABLES, "OMP_WAIT_POLICY"):
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)


def test_thread_variables_follow_the_limit_unless_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the operator's own value wins
    root = cgroup(tmp_path, "100000 100000")
    assert apply_thread_limits(root) == 1
    assert os.environ["OMP_NUM_THREADS"] == "3"
    assert all(os.environ[name] == "1" for name in THREAD_VARIABLES if name != "OMP_NUM_THREADS")


def test_idle_openmp_threads_sleep_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    apply_thread_limits(cgroup(tmp_path, "max 100000"))
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    apply_thread_limits(tmp_path)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_environment_is_restored_after_these_tests(environment_before: dict[str, str | None]) -> None:
    """Runs after the tests above (file order): none of them left a thread variable behind."""
    assert {name: os.environ.get(name) for name in THREAD_VARIABLES} == environment_before
    assert "OMP_THREAD_LIMIT" not in THREAD_VARIABLES  # CTranslate2 decodes garbage above it
