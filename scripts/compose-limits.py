#!/usr/bin/env python3
"""The compose fleet's memory and CPU limits at their defaults, per service and in all.

    python3 scripts/compose-limits.py [--total]      (make limits)

Reads docker-compose.yml (a ``${VAR:-default}`` is taken at its default; ``.env`` is not read)
and leaves out one-shot tools (profile ``tools``: they do not run beside the fleet) and counts
the optional profiles (``monitoring``, ``grafana``) apart. The one
place the total is computed: the docs quote what this prints, and tests/test_packaging.py
checks that they do and that it fits the smallest VPS (8 GB: at most 7 GiB of limits).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def default_of(raw: object) -> str:
    """``${VAR:-x}`` -> ``x``; anything else as it is."""
    text = str(raw)
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", text)
    return match.group(1) if match else text


#: profiles a user adds to the fleet by choice (make run-monitoring): counted apart
OPTIONAL = ("monitoring", "grafana")


def limits(
    compose_file: Path = ROOT / "docker-compose.yml", profiles: tuple[str, ...] = ()
) -> dict[str, tuple[int, float]]:
    """service -> (mem_limit bytes, cpus) of every long-running service of the fleet, or with
    ``profiles`` those of the optional profiles named (``("monitoring", "grafana")``). Raises
    ValueError for a service without a ``<number><k|m|g>`` mem_limit."""
    compose = yaml.safe_load(compose_file.read_text())
    out: dict[str, tuple[int, float]] = {}
    for name, service in compose["services"].items():
        mine = set(service.get("profiles") or [])
        optional = mine & set(OPTIONAL)
        if "tools" in mine or (not optional & set(profiles) if profiles else bool(optional)):
            continue
        mem = re.fullmatch(r"(\d+)([kmg])", default_of(service.get("mem_limit", "")).lower())
        if not mem:
            raise ValueError(
                f"{name}: mem_limit {service.get('mem_limit')!r} is missing or not <number><k|m|g>"
            )
        out[name] = (int(mem.group(1)) * UNITS[mem.group(2)], float(default_of(service.get("cpus", 0)) or 0))
    return out


def total_gib(table: dict[str, tuple[int, float]]) -> str:
    """The sum of the memory limits, as the docs print it: ``6.94 GiB (7104 MiB)``."""
    total = sum(mem for mem, _ in table.values())
    return f"{total / (1 << 30):.2f} GiB ({total >> 20} MiB)"


def main(argv: list[str]) -> int:
    table = limits()
    extra = limits(profiles=OPTIONAL)
    if "--total" not in argv:
        for name, (mem, cpus) in table.items():
            print(f"{name:<22}{mem >> 20:>6} MiB  {cpus:g} CPUs")
    print(f"memory limits in all: {total_gib(table)}")
    if "--total" not in argv:
        print("optional (make run-monitoring [GRAFANA=1]):")
        for name, (mem, cpus) in extra.items():
            print(f"{name:<22}{mem >> 20:>6} MiB  {cpus:g} CPUs")
        monitoring, grafana = (sum(m for m, _ in limits(profiles=(p,)).values()) >> 20 for p in OPTIONAL)
        print(f"the monitoring profile adds {monitoring} MiB, Grafana {grafana} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
