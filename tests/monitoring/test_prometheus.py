"""The monitoring profile's files, checked without a fleet (issue 25.3): Prometheus' alert rules
pass ``promtool check rules`` and their unit tests (``promtool test rules``), every alert has a
test that makes it fire and one that keeps it quiet, the configuration start.sh renders passes
``promtool check config``, and every Grafana dashboard is well formed with each panel's PromQL
parsed by Prometheus' own parser. tests/compose/test_monitoring.py runs every panel's query on a
live fleet."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from tests.conftest import ROOT

MONITORING = ROOT / "monitoring"
PROMETHEUS = MONITORING / "prometheus"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
#: the datasource the provisioning file declares (monitoring/grafana/provisioning/datasources)
DATASOURCE_UID = "prometheus"


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # Debian's `prometheus` package (scripts/install-system-deps.sh installs it): CI has it
    assert shutil.which("promtool"), "promtool missing: bash scripts/install-system-deps.sh"
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alert_names() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_alert_rules_check_and_pass_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in checked.stdout
    tested = promtool("test", "rules", "alerts.test.yml", cwd=PROMETHEUS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    names = alert_names()
    assert len(names) >= 6 and len(set(names)) == len(names)
    assert set(names) - fires == set(), "alerts no test makes fire"
    assert set(names) - quiet == set(), "alerts no test keeps quiet"
    # the issue's list: a service down, a stalled queue, failures, LLM saturation, disk, certificate
    for expected in ("ServiceDown", "QueueStalled", "TaskFailureRate", "LLMSlotsSaturated", "DiskNearlyFull"):
        assert f"Mediafleet{expected}" in names
    assert "MediafleetCertificateExpiresSoon" in names


def run_start_script(tmp_path: Path, token: str) -> subprocess.CompletedProcess[str]:
    """monitoring/prometheus/start.sh with a `prometheus` on PATH that checks the rendered
    configuration with promtool instead of serving it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "prometheus"
    fake.write_text('#!/bin/sh\necho "args: $*"\nexec promtool check config "${1#--config.file=}"\n')
    fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GATEWAY_INTERNALS_TOKEN": token,
        "MEDIAFLEET_MONITORING_DIR": str(PROMETHEUS),
        "PROMETHEUS_RUN_DIR": str(tmp_path / "run"),
        "PROMETHEUS_DATA_DIR": str(tmp_path / "data"),
        "PROMETHEUS_SCRAPE_INTERVAL": "7s",
    }
    return subprocess.run(
        ["sh", str(PROMETHEUS / "start.sh")], env=env, capture_output=True, text=True, timeout=60
    )


def test_start_script_renders_a_valid_config_and_keeps_the_token_private(tmp_path: Path) -> None:
    ran = run_start_script(tmp_path, "s3cret-token")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SUCCESS" in ran.stdout and "1 rule files found" in ran.stdout
    assert "--storage.tsdb.retention.time=15d" in ran.stdout
    config = yaml.safe_load((tmp_path / "run" / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "7s"
    token_file = Path(config["scrape_configs"][0]["authorization"]["credentials_file"])
    assert token_file.read_text() == "s3cret-token" and token_file.stat().st_mode & 0o077 == 0
    assert "s3cret-token" not in (tmp_path / "run" / "prometheus.yml").read_text()
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs >= {"gateway", "job_manager", "vector_db", "ai", "redis", "postgres", "nginx", "certificate"}


def test_every_capability_is_scraped_on_its_port() -> None:
    from mediafleet.common import registry

    config = yaml.safe_load((PROMETHEUS / "prometheus.yml.in").read_text().replace("@", ""))
    ai = next(job for job in config["scrape_configs"] if job["job_name"] == "ai")
    scraped = {entry["names"][0]: entry["port"] for entry in ai["dns_sd_configs"]}
    shipped = {  # the capability folders the fleet's images are built from (tests add others)
        name: cap.http_port
        for name, cap in registry.capabilities().items()
        if (ROOT / "services" / name / "Dockerfile.cpu").is_file()
    }
    assert len(shipped) >= 7 and scraped == shipped


def test_start_script_without_the_gateway_token_says_what_to_do(tmp_path: Path) -> None:
    ran = run_start_script(tmp_path, "")
    assert ran.returncode == 2
    assert "GATEWAY_INTERNALS_TOKEN is empty" in ran.stderr and "make env" in ran.stderr


# --- Grafana dashboards -----------------------------------------------------------------------
# The subset of Grafana's dashboard JSON model (grafana.com/docs/grafana/latest/dashboards/
# build-dashboards/view-dashboard-json-model/) these dashboards use, strictly: a misspelt key
# or a panel without a query fails here, not silently in Grafana.


class Datasource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["prometheus"]
    uid: Literal["prometheus"]


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refId: str = Field(pattern=r"^[A-Z]$")
    datasource: Datasource
    expr: str = Field(min_length=1)
    legendFormat: str
    instant: bool = False
    format: Literal["time_series", "table"] = "time_series"


class GridPos(BaseModel):
    model_config = ConfigDict(extra="forbid")
    h: int = Field(ge=1)
    w: int = Field(ge=1, le=24)
    x: int = Field(ge=0, le=23)
    y: int = Field(ge=0)


class Panel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    type: Literal["timeseries", "stat", "gauge", "table"]
    title: str = Field(min_length=1)
    description: str = ""
    datasource: Datasource
    gridPos: GridPos
    targets: list[Target] = Field(min_length=1)
    fieldConfig: dict[str, object]
    options: dict[str, object]


class Variable(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    type: Literal["query"]
    datasource: Datasource
    definition: str
    allValue: str


class Templating(BaseModel):
    list: list[Variable]


class Dashboard(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uid: str = Field(pattern=r"^mediafleet-[a-z-]+$")
    title: str = Field(pattern=r"^mediafleet: ")
    description: str
    tags: list[str]
    schemaVersion: int = Field(ge=36)
    version: int
    editable: bool
    timezone: str
    time: dict[str, str]
    refresh: str
    templating: Templating
    annotations: dict[str, list[object]]
    panels: list[Panel] = Field(min_length=1)


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) of every panel target, template variables replaced by
    their "All" value (as Grafana sends them with All selected)."""
    out = []
    for path in DASHBOARDS:
        dash = Dashboard.model_validate_json(path.read_text())
        values = {v.name: v.allValue for v in dash.templating.list}
        for panel in dash.panels:
            for target in panel.targets:
                expr = re.sub(r"\$([A-Za-z]\w*)", lambda m, v=values: v[m.group(1)], target.expr)
                out.append((path.name, panel.title, expr))
    return out


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_well_formed(path: Path) -> None:
    dash = Dashboard.model_validate_json(path.read_text())
    assert len({p.id for p in dash.panels}) == len(dash.panels)
    cells = set()  # no two panels overlap on Grafana's 24-column grid
    for p in dash.panels:
        g = p.gridPos
        assert g.x + g.w <= 24, p.title
        mine = {(x, y) for x in range(g.x, g.x + g.w) for y in range(g.y, g.y + g.h)}
        assert not cells & mine, f"{p.title} overlaps another panel"
        cells |= mine
    used = set(re.findall(r"\$([A-Za-z]\w*)", path.read_text()))  # not Grafana's own $__all
    assert used <= {v.name for v in dash.templating.list}, "a variable no template defines"


def test_dashboards_cover_the_issue_and_have_unique_uids() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    assert {p.stem for p in DASHBOARDS} == {"fleet", "queues", "capabilities", "api", "llm"}
    provisioned = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert provisioned["datasources"][0]["uid"] == DATASOURCE_UID


def test_every_panel_query_parses(tmp_path: Path) -> None:
    """Each expr as a recording rule: ``promtool check rules`` parses it with Prometheus' parser."""
    rules = [{"record": f"panel:q{i}", "expr": expr} for i, (_, _, expr) in enumerate(dashboard_queries())]
    file = tmp_path / "panels.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    checked = promtool("check", "rules", str(file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout
