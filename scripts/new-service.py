"""Create a working capability from templates/capability: ``make new-service NAME=pose_estimation``.

Writes ``services/NAME/`` (contract, settings, runner with a trivial engine, Dockerfiles,
tests) and inserts its block into docker-compose.yml; ``make new-service`` then locks,
syncs and exports the image requirements. The new service passes its own tests as
generated; replace the engine and the result schema with the real task.

    python scripts/new-service.py NAME [--root DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "templates" / "capability"
MARKER = "  # (make new-service inserts a capability's block above this line)"
#: the monitoring profile's Prometheus finds every replica of an AI service through Docker's DNS
SCRAPE_FILE = Path("monitoring/prometheus/prometheus.yml.in")
SCRAPE_MARKER = "      # (make new-service adds a capability's entry above this line)"


def render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def next_port(root: Path) -> int:
    ports = [
        int(m)
        for f in root.glob("services/*/mediafleet/*/contract.py")
        for m in re.findall(r"http_port=(\d+)", f.read_text())
    ]
    # 8000 gateway, 8102 job_manager; capabilities from 8101, then above 8110
    return max([8110, *ports]) + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="snake_case, e.g. pose_estimation (it also names the task and queue)")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root to write into")
    args = parser.parse_args(argv)
    name, root = args.name, args.root
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,30}", name):
        print(f"new-service: {name!r} is not a snake_case name (a-z, 0-9, _)", file=sys.stderr)
        return 2
    target = root / "services" / name
    if target.exists():
        print(f"new-service: {target} exists", file=sys.stderr)
        return 2
    values = {
        "name": name,
        "Name": "".join(part.title() for part in name.split("_")),
        "NAME": name.upper(),
        "package": "mediafleet-" + name.replace("_", "-"),
        "port": str(next_port(root)),
    }
    compose = root / "docker-compose.yml"
    text = compose.read_text()
    if MARKER not in text:
        print(f"new-service: {compose} lacks the line {MARKER.strip()!r}", file=sys.stderr)
        return 2
    for src in sorted(TEMPLATE.rglob("*")):
        if src.is_dir() or src.name == "compose-block.yml" or "__pycache__" in src.parts:
            continue
        # template files end in .tmpl, so linters and pytest leave them alone
        rel = Path(*(part.replace("__name__", name) for part in src.relative_to(TEMPLATE).parts))
        rel = rel.with_name(rel.name.removesuffix(".tmpl"))
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(src.read_text(), values))
    block = render((TEMPLATE / "compose-block.yml").read_text(), values)
    compose.write_text(text.replace(MARKER, block.strip("\n") + "\n\n" + MARKER, 1))
    print(f"created {target.relative_to(root)} (task {name!r}, queue {name}:*, port {values['port']})")
    print("added its block to docker-compose.yml")
    scrape = root / SCRAPE_FILE
    if scrape.is_file() and SCRAPE_MARKER in (text := scrape.read_text()):
        entry = f"      - names: [{name}]\n        type: A\n        port: {values['port']}\n"
        scrape.write_text(text.replace(SCRAPE_MARKER, entry + SCRAPE_MARKER, 1))
        print(f"added it to {SCRAPE_FILE} (Prometheus scrapes its /metrics)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
