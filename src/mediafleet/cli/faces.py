"""``mediafleet faces verify IMG1 IMG2 [--json] [--api URL]``: the one-to-one face check; and
corrections of the embedded store's people: ``faces not-this-person FACE_ID`` and ``faces split
PERSON_ID FACE_ID... [--name NAME]`` (ids from ``mediafleet people --faces``).

Embedded: the installed capability answering ``face_verify`` queries runs here (its runner
loads its models from ``MEDIAFLEET_MODELS_DIR``). ``--api``: ``POST /v1/faces/verify`` of a
running gateway. Prints the cosine similarity, the threshold and whether the largest face of
each image is the same person. Exit status 0 when the comparison was made (either answer),
1 when it could not be (one line on stderr), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    faces = sub.add_parser("faces", help="face verification (embedded, or through --api)")
    fsub = faces.add_subparsers(dest="faces_command", required=True)
    verify = fsub.add_parser("verify", help="are the largest faces of two images the same person?")
    verify.add_argument("images", nargs=2, type=Path, metavar="IMAGE")
    verify.add_argument("--detector", help="face detector (default: the service's, mtcnn)")
    verify.add_argument("--embedder", help="embedding model (default: the service's, dlib)")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument("--api", metavar="URL", help="ask a gateway, e.g. http://127.0.0.1:8000")
    verify.add_argument("--token", default=os.environ.get("MEDIAFLEET_TOKEN"), help="access token for --api")
    verify.add_argument("--username", default=os.environ.get("MEDIAFLEET_USERNAME"))
    verify.add_argument("--password", default=os.environ.get("MEDIAFLEET_PASSWORD"))
    notx = fsub.add_parser("not-this-person", help="take a face out of its person, for good (embedded store)")
    notx.add_argument("face_id", metavar="FACE_ID")
    notx.add_argument("--db", help="SQLAlchemy URL of the embedded store")
    split = fsub.add_parser(
        "split", help="move the chosen faces of a person to a new person (embedded store)"
    )
    split.add_argument("person_id", metavar="PERSON_ID")
    split.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    split.add_argument("--name", help="the new person's name (default: an unnamed cluster)")
    split.add_argument("--db", help="SQLAlchemy URL of the embedded store")


def correct(args: argparse.Namespace) -> int:
    """``not-this-person`` / ``split`` on the embedded store: one line on success, one on error (exit 2)."""
    from mediafleet.cli.embedded import EmbeddedAnalyzer
    from mediafleet.common.errors import MediafleetError

    try:
        with EmbeddedAnalyzer(database_url=args.db) as analyzer:
            if args.faces_command == "split":
                new = analyzer.split(args.person_id, args.face_ids, args.name)
                print(f"split off {new['faces']} face(s) into person {new['id']}")
            else:
                moved = analyzer.not_this_person(args.face_id)
                print(
                    f"face {moved['face_id']} is now in person {moved['person_id']}, and stays out of its former one"
                )
    except MediafleetError as exc:
        print(f"mediafleet: faces {args.faces_command}: {exc.message}", file=sys.stderr)
        return 2
    return 0


def _embedded(args: argparse.Namespace) -> dict[str, Any]:
    from mediafleet.common import registry

    for cap in registry.capabilities().values():
        for spec in cap.queries:
            if spec.purpose == "face_verify":
                payload = {"images": [base64.b64encode(p.read_bytes()).decode() for p in args.images]}
                payload.update({k: v for k in ("detector", "embedder") if (v := getattr(args, k))})
                runner = cap.build_runner()
                return runner.query(spec.name, spec.input.model_validate(payload)).model_dump(mode="json")
    raise RuntimeError("no installed capability answers face_verify (install mediafleet[faces])")


def _api(args: argparse.Namespace) -> dict[str, Any]:
    from mediafleet.cli.client import ApiClient, ApiError, api_error

    client = ApiClient(args.api, args.token, args.username, args.password)
    data = {k: v for k in ("detector", "embedder") if (v := getattr(args, k))}
    with args.images[0].open("rb") as a, args.images[1].open("rb") as b:
        files = {"image1": (args.images[0].name, a), "image2": (args.images[1].name, b)}
        try:
            resp = client.http.post("/v1/faces/verify", files=files, data=data, timeout=120.0)
        except Exception as exc:  # httpx errors: one line
            raise ApiError(f"cannot reach the gateway: {exc}") from exc
    if resp.status_code != 200:
        raise api_error(resp)
    answer: dict[str, Any] = resp.json()
    return answer


def run(args: argparse.Namespace) -> int:
    if args.faces_command != "verify":
        return correct(args)
    for path in args.images:
        if not path.is_file():
            print(f"mediafleet: {path}: no such file", file=sys.stderr)
            return 1
    try:
        result = _api(args) if args.api else _embedded(args)
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc)
        print(f"mediafleet: faces verify: {message}", file=sys.stderr)
        return 1
    if args.json:
        slim = {k: v for k, v in result.items() if k != "faces"}
        print(json.dumps(slim))
    else:
        verdict = "same person" if result["same_person"] else "different people"
        op = ">=" if result["same_person"] else "<"
        print(
            f"{verdict}: cosine similarity {result['similarity']:.3f} {op} threshold {result['threshold']}"
            f" ({result.get('detector') or '-'} + {result.get('embedder') or '-'})"
        )
    return 0
