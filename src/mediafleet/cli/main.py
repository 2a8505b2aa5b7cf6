"""``mediafleet`` command line.

    mediafleet analyze FILE... --tasks ocr [-o ocr.engine=rapidocr -o ocr.languages=en,fr] [--json]
    mediafleet analyze --api URL FILE...      (same work through a running gateway)
    mediafleet search QUERY [--semantic] [--json]
    mediafleet similar FILE [--json]
    mediafleet people [--json]
    mediafleet models list | pull NAME... [--all] [--source official|package] | verify [NAME...]
    mediafleet faces verify IMG1 IMG2 [--json] [--api URL]
    mediafleet monitor [--api URL] [--once]    (a running fleet, live: queues, workers, failures)

Exit status: 0 when every file was analysed, 1 when any file failed (one line on
stderr per failed file: ``mediafleet: FILE: reason``), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mediafleet.common import registry


def _defaults_help() -> str:
    kinds = {k: registry.default_tasks(k) for k in ("image", "audio", "video")}
    return "; ".join(f"{k}: {','.join(v) or 'none'}" for k, v in kinds.items())


def _version() -> str:
    """The installed distribution's version (pyproject.toml), e.g. ``0.1.0``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mediafleet")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _limit(raw: str) -> int:
    """``--limit``: an integer in 1-100 (argparse reports anything else as a usage error)."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{value} is not in 1-100")
    return value


def _parser(task_names: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mediafleet", description="Analyse media with the mediafleet engines."
    )
    parser.add_argument("--version", action="version", version=f"mediafleet {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    analyze = sub.add_parser("analyze", help="analyse files (embedded, or through --api)")
    analyze.add_argument("files", nargs="+", type=Path, metavar="FILE")
    analyze.add_argument(
        "--tasks",
        default=None,
        help=f"comma-separated tasks (available: {', '.join(task_names) or 'none installed'}); "
        f"default: those of the file's kind that can run now ({_defaults_help()})",
    )
    analyze.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="TASK.KEY=VALUE",
        help="a task option, e.g. -o ocr.engine=easyocr -o ocr.languages=en,fr (JSON values work too)",
    )
    analyze.add_argument("--json", action="store_true", help="print one JSON object per file")
    analyze.add_argument(
        "--db", help="SQLAlchemy URL of the embedded store (default MEDIAFLEET_DATABASE_URL)"
    )
    analyze.add_argument(
        "--api", metavar="URL", help="send the work to a gateway, e.g. http://127.0.0.1:8000"
    )
    analyze.add_argument("--token", default=os.environ.get("MEDIAFLEET_TOKEN"), help="access token for --api")
    analyze.add_argument("--username", default=os.environ.get("MEDIAFLEET_USERNAME"))
    analyze.add_argument("--password", default=os.environ.get("MEDIAFLEET_PASSWORD"))
    analyze.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for a job (--api)")

    from mediafleet.cli import faces, models, monitor

    models.add_parser(sub)
    faces.add_parser(sub)
    monitor.add_parser(sub)

    search = sub.add_parser("search", help="full-text search of what analyze read (embedded store)")
    search.add_argument("query")
    search.add_argument(
        "--semantic",
        action="store_true",
        help="compare the query's CLIP text embedding with the analysed images' (analyze --tasks clip)",
    )
    search.add_argument("--db", help="SQLAlchemy URL of the embedded store")
    search.add_argument("--limit", type=_limit, default=20, help="at most this many hits (1-100)")
    search.add_argument("--json", action="store_true")

    similar = sub.add_parser(
        "similar", help="analysed files nearest to FILE by their whole-media embedding (embedded store)"
    )
    similar.add_argument("file", type=Path, metavar="FILE")
    similar.add_argument("--db", help="SQLAlchemy URL of the embedded store")
    similar.add_argument("--limit", type=_limit, default=20, help="at most this many hits (1-100)")
    similar.add_argument("--json", action="store_true")

    duplicates = sub.add_parser(
        "duplicates", help="analysed files that are near-duplicates of each other, in groups (embedded store)"
    )
    duplicates.add_argument("--db", help="SQLAlchemy URL of the embedded store")
    duplicates.add_argument("--json", action="store_true")

    people = sub.add_parser("people", help="the people analyze --tasks faces found (embedded store)")
    people.add_argument("--db", help="SQLAlchemy URL of the embedded store")
    people.add_argument("--json", action="store_true")
    people.add_argument(
        "--faces", action="store_true", help="list each face's id (for faces not-this-person / split)"
    )
    return parser


def _print_human(item: dict[str, Any]) -> None:
    media = item["media"]
    size = f"{media['width']}x{media['height']} " if media.get("width") else ""
    print(f"{item['file']}  ({size}{media['mime']})")
    known = registry.tasks()
    for task, raw in item["results"].items():
        if task not in known:
            continue
        spec = known[task][1]
        print(f"  {task}: {spec.summary_of(raw)}")
        for seg in spec.derive(raw).segments:
            print(f"    {seg.text}")


def _parse_options(pairs: list[str], tasks: list[str]) -> dict[str, dict[str, Any]]:
    """``["ocr.languages=en,fr"]`` -> ``{"ocr": {"languages": ["en", "fr"]}}``. Raises ValueError."""
    known = registry.tasks()
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        task, dot, name = key.partition(".")
        if not (sep and dot and name):
            raise ValueError(f"option {pair!r} is not TASK.KEY=VALUE")
        if task not in tasks:
            raise ValueError(f"option {pair!r} is for {task!r}, which is not among the tasks")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        field = known[task][1].options.model_fields.get(name)
        if isinstance(value, str) and field is not None and "list[" in str(field.annotation):
            value = [v.strip() for v in value.split(",") if v.strip()]
        out.setdefault(task, {})[name] = value
    return out


def _fail(file: Path, reason: str) -> None:
    print(f"mediafleet: {file}: {reason}", file=sys.stderr)


def cmd_analyze(args: argparse.Namespace) -> int:
    tasks: list[str] | None = None
    if args.tasks is not None:
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    known = registry.task_names()
    unknown = [t for t in tasks or [] if t not in known]
    if unknown or tasks == []:
        print(
            f"mediafleet: unknown task(s) {unknown or tasks}; available: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    try:
        options = _parse_options(args.option, tasks if tasks is not None else list(known))
    except ValueError as exc:
        print(f"mediafleet: {exc}", file=sys.stderr)
        return 2

    from mediafleet.common.errors import MediafleetError

    if args.api:
        from mediafleet.cli.client import ApiClient, ApiError

        try:
            client = ApiClient(args.api, token=args.token, username=args.username, password=args.password)
        except ApiError as exc:
            print(f"mediafleet: {args.api}: {exc}", file=sys.stderr)
            return 1

        def run(path: Path) -> dict[str, Any]:
            return client.analyze(path, tasks, options, timeout=args.timeout)

        errors: tuple[type[Exception], ...] = (ApiError, OSError)
    else:
        from mediafleet.cli.embedded import EmbeddedAnalyzer

        try:
            analyzer = EmbeddedAnalyzer(database_url=args.db)
        except MediafleetError as exc:
            print(f"mediafleet: {exc.message}", file=sys.stderr)
            return 1

        try:
            return _analyze_all(
                args, lambda path: analyzer.analyze(path, tasks, options), (MediafleetError, OSError)
            )
        finally:
            analyzer.close()
    return _analyze_all(args, run, errors)


def _analyze_all(
    args: argparse.Namespace, run: Callable[[Path], dict[str, Any]], errors: tuple[type[Exception], ...]
) -> int:
    """``run`` on each of ``args.files``, printing each result; 1 when any failed.

    A task skipped for a reason already given for an earlier file is named on one line for
    the file ("skipped as above"), not with its reason again: `make demo` over four images
    printed 24 lines of the same five reasons."""
    failed = 0
    told: set[tuple[str, str]] = set()
    for path in args.files:
        if not path.is_file():
            _fail(path, "no such file" if not path.exists() else "not a regular file")
            failed += 1
            continue
        try:
            item = run(path)
        except errors as exc:
            _fail(path, getattr(exc, "message", None) or str(exc))
            failed += 1
            continue
        again = []
        for task, why in (item.get("skipped") or {}).items():
            if (task, why) in told:
                again.append(task)
                continue
            told.add((task, why))
            print(f"mediafleet: {path}: {task} skipped: {why}", file=sys.stderr)
        if again:
            print(f"mediafleet: {path}: skipped as above: {', '.join(again)}", file=sys.stderr)
        if args.json:
            print(json.dumps(item, ensure_ascii=False), flush=True)
        else:
            _print_human(item)
    return 1 if failed else 0


def _print_similar(query: str, hits: list[dict[str, Any]], collection: str | None, as_json: bool) -> None:
    if as_json:
        body = {"query": query, "collection": collection, "data": hits, "count": len(hits)}
        print(json.dumps(body, ensure_ascii=False))
        return
    for hit in hits:
        print(f"{hit['similarity']:+.3f}  {hit['filename'] or hit['media_id']}  ({hit['path']})")
    if not hits:
        print(f"nothing analysed is comparable with {query!r} yet")


def cmd_search(args: argparse.Namespace) -> int:
    from mediafleet.cli.embedded import EmbeddedAnalyzer
    from mediafleet.common.errors import MediafleetError

    try:
        with EmbeddedAnalyzer(database_url=args.db) as analyzer:
            if args.semantic:
                collection, found = analyzer.semantic_search(args.query, limit=args.limit)
                _print_similar(args.query, found, collection, args.json)
                return 0
            hits = analyzer.search(args.query, limit=args.limit)
    except MediafleetError as exc:
        print(f"mediafleet: {exc.message}", file=sys.stderr)
        return 2 if exc.status_code < 500 else 1
    if args.json:
        print(json.dumps({"query": args.query, "data": hits, "count": len(hits)}, ensure_ascii=False))
        return 0
    for hit in hits:
        print(f"{hit['filename'] or hit['media_id']}  ({hit['path']})")
        for m in hit["matches"]:
            where = (
                f"  box={m['box']}"
                if m["box"]
                else f"  t={m['start']}-{m['end']} s"
                if m["start"] is not None
                else ""  # text of the whole file (a place, a camera): neither box nor time
            )
            print(f"    {m['task']}: {m['text']!r}{where}")
    if not hits:
        print(f"no media matches {args.query!r}")
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from mediafleet.cli.embedded import EmbeddedAnalyzer
    from mediafleet.common.errors import MediafleetError

    if not args.file.is_file():
        _fail(args.file, "no such file" if not args.file.exists() else "not a regular file")
        return 2
    try:
        with EmbeddedAnalyzer(database_url=args.db) as analyzer:
            collection, hits = analyzer.similar(args.file, limit=args.limit)
    except MediafleetError as exc:
        _fail(args.file, exc.message)
        return 2 if exc.status_code < 500 else 1
    except OSError as exc:
        _fail(args.file, exc.strerror or str(exc))
        return 1
    _print_similar(str(args.file), hits, collection, args.json)
    return 0


def cmd_people(args: argparse.Namespace) -> int:
    from mediafleet.cli.embedded import EmbeddedAnalyzer
    from mediafleet.common.errors import MediafleetError

    try:
        with EmbeddedAnalyzer(database_url=args.db) as analyzer:
            people = analyzer.people()
    except MediafleetError as exc:
        print(f"mediafleet: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"data": people, "count": len(people)}, ensure_ascii=False))
        return 0
    for person in people:
        label = person["name"] or f"unnamed {person['id'][:8]}"
        print(f"{label}: {person['faces']} faces in {', '.join(person['files'])}")
        if args.faces:
            print(f"    person {person['id']}")
            for face in person["face_ids"]:
                print(f"    face {face['face_id']}  {face['file']}")
    if not people:
        print("no faces yet: mediafleet analyze --tasks faces FILE...")
    return 0


def cmd_duplicates(args: argparse.Namespace) -> int:
    from mediafleet.cli.embedded import EmbeddedAnalyzer
    from mediafleet.common.errors import MediafleetError

    try:
        with EmbeddedAnalyzer(database_url=args.db) as analyzer:
            groups = analyzer.duplicates()
    except MediafleetError as exc:
        print(f"mediafleet: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"data": groups, "count": len(groups)}, ensure_ascii=False))
        return 0
    for n, group in enumerate(groups, 1):
        print(f"group {n}: {', '.join(f['filename'] for f in group['files'])}")
        for link in group["links"]:
            print(f"    {link['a']} ~ {link['b']}: {link['method']}, {link['detail']}")
    if not groups:
        print("no near-duplicates among the analysed files (analyze runs the fingerprint task by default)")
    return 0


def main(argv: list[str] | None = None) -> int:
    # PYTHON_ARGCOMPLETE_OK (argcomplete's marker: this command completes itself)
    import argcomplete

    from mediafleet.common.logging import configure_logging

    # a command prints what matters itself (skipped tasks, one line per failed file)
    configure_logging(os.environ.get("MEDIAFLEET_LOG_LEVEL", "ERROR"))
    parser = _parser(registry.task_names())
    argcomplete.autocomplete(parser)  # answers and exits when the shell asks for completions
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.command == "models":
        from mediafleet.cli import models

        return models.run(args)
    if args.command == "faces":
        from mediafleet.cli import faces

        return faces.run(args)
    if args.command == "monitor":
        from mediafleet.cli import monitor

        return monitor.run(args)
    if args.command == "people":
        return cmd_people(args)
    if args.command == "similar":
        return cmd_similar(args)
    if args.command == "duplicates":
        return cmd_duplicates(args)
    code = cmd_analyze(args) if args.command == "analyze" else cmd_search(args)
    if args.command == "analyze" and not getattr(args, "json", False):
        print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
