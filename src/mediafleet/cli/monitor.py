"""``mediafleet monitor``: a live terminal view of a running fleet, through its gateway.

Every ``--interval`` seconds: the gateway's readiness (``/readyz``: database, Redis,
job_manager) and, per capability (``GET /v1/admin/services``, an admin's token), its live
workers per device, the tasks waiting per priority and how long the oldest has waited, the
tasks that failed in the last hour, and each task's readiness. ``--once`` prints one view and
exits (scripts, cron); Ctrl-C ends the live view.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from typing import Any

import httpx

from mediafleet.cli.client import ApiClient, ApiError, api_error

#: ANSI: cursor home and clear the screen (a terminal's refresh; left out with --once).
CLEAR = "\033[H\033[2J"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "monitor",
        help="live view of a running fleet: readiness, queues, workers per device, failures (admin)",
    )
    p.add_argument(
        "--api",
        default=os.environ.get("MEDIAFLEET_API", "http://127.0.0.1:8000"),
        metavar="URL",
        help="the gateway (default: MEDIAFLEET_API or http://127.0.0.1:8000)",
    )
    p.add_argument("--token", default=os.environ.get("MEDIAFLEET_TOKEN"), help="an admin's access token")
    p.add_argument("--username", default=os.environ.get("MEDIAFLEET_USERNAME"))
    p.add_argument("--password", default=os.environ.get("MEDIAFLEET_PASSWORD"))
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    p.add_argument("--once", action="store_true", help="print one view and exit")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render(ready: dict[str, Any], fleet: dict[str, Any], now: dt.datetime) -> str:
    """One view as text: ``ready`` is the gateway's ``/readyz`` body, ``fleet`` the
    ``/v1/admin/services`` body (shapes: docs/api.md)."""
    checks = ", ".join(f"{k} {v}" for k, v in (ready.get("checks") or {}).items())
    lines = [
        f"mediafleet at {now:%Y-%m-%d %H:%M:%S} UTC",
        f"gateway: {ready.get('status', '?')} ({checks}); job_manager: {fleet.get('job_manager', '?')}",
        "",
        f"{'capability':22} {'workers':>7}  {'devices':14} {'waiting h/n/l':>13}  {'oldest':>7}  "
        f"{'failed 1h':>9}  readiness",
    ]
    for cap in fleet.get("capabilities", []):
        queued = cap.get("queued", {})
        waiting = "/".join(str(queued.get(p, 0)) for p in ("high", "normal", "low"))
        devices = ", ".join(f"{d}:{n}" for d, n in sorted(cap.get("devices", {}).items())) or "-"
        readiness = "; ".join(
            f"{task} {r.get('state', '?')}"
            + ("" if r.get("state") == "ready" else f" ({r.get('message', '')})")
            for task, r in cap.get("readiness", {}).items()
        )
        lines.append(
            f"{cap['capability']:22} {cap.get('workers', 0):>7}  {devices:14} {waiting:>13}  "
            f"{_duration(cap.get('oldest_wait_s', 0.0)):>7}  {cap.get('failed_last_hour', 0):>9}  {readiness}"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        client = ApiClient(args.api, token=args.token, username=args.username, password=args.password)
    except ApiError as exc:
        print(f"mediafleet monitor: {exc}", file=sys.stderr)
        return 2
    try:
        return _loop(client, args)
    finally:
        client.http.close()


def _loop(client: ApiClient, args: argparse.Namespace) -> int:
    try:
        while True:
            try:
                ready = client.http.get("/readyz").json()
                resp = client.http.get("/v1/admin/services")
                if resp.status_code != 200:
                    raise api_error(resp)
                view = render(ready, resp.json(), dt.datetime.now(dt.UTC))
            except (httpx.HTTPError, ValueError) as exc:
                view = f"mediafleet monitor: the gateway at {args.api} does not answer ({exc})\n"
                if args.once:
                    print(view, end="", file=sys.stderr)
                    return 1
            except ApiError as exc:
                print(f"mediafleet monitor: {exc}", file=sys.stderr)
                return 1
            sys.stdout.write(view if args.once else CLEAR + view)
            sys.stdout.flush()
            if args.once:
                return 0
            time.sleep(max(args.interval, 0.2))
    except KeyboardInterrupt:
        return 0
