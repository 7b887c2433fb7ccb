"""`carebus trace KIND ID` and `carebus ops rebuild`: the ops console's answers in the terminal.

Both go through the ops console's HTTP API rather than its tables: the console owns its
schema (and how a trace is assembled), and a rebuild must stop its running tracker first,
which only the console itself can do (docs/decisions/018). The URL: ``--url``, else
CAREBUS_OPS_URL, else the installed console's settings, else http://127.0.0.1:8087.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from carebus_shared.auth.client import bearer, cli_key
from carebus_shared.cli.services import discover

DEFAULT_URL = "http://127.0.0.1:8087"
OPS_SERVICE = "ops-console"


def console_url(given: str | None) -> str:
    if given:
        return given.rstrip("/")
    if os.environ.get("CAREBUS_OPS_URL"):
        return os.environ["CAREBUS_OPS_URL"].rstrip("/")
    for service in discover():
        if service.name == OPS_SERVICE:
            settings = service.settings()
            return f"http://{settings.http_host}:{settings.http_port}"
    return DEFAULT_URL


def add_parsers(sub: Any) -> None:
    trace = sub.add_parser("trace", help="an entity's timeline and linked entities")
    trace.add_argument("kind", help="appointment, charge, claim, payment, adjustment, journal")
    trace.add_argument("id")
    trace.add_argument("--url", help="the ops console (default: its settings)")
    trace.add_argument("--json", action="store_true", help="the API's JSON as is")
    trace.add_argument("--actor", default=os.environ.get("USER", "carebus-cli"))
    ops = sub.add_parser("ops", help="the ops console")
    ops_sub = ops.add_subparsers(dest="action", required=True)
    rebuild = ops_sub.add_parser("rebuild", help="rebuild the sync tracker from the streams")
    rebuild.add_argument("--url", help="the ops console (default: its settings)")
    rebuild.add_argument("--wait", type=float, default=300.0, help="seconds to wait (0: none)")


def _call(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    # The key's client is who acts (CAREBUS_API_KEY, else the admin key of `carebus run`).
    request = urllib.request.Request(
        url, method=method, headers={**bearer(cli_key()), **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}


def format_trace(body: dict[str, Any]) -> list[str]:
    lines = [f"{body['kind']} {body['id']}  site {body['site']}  stands at: {body['stage']}"]
    for linked in body.get("linked", []):
        lines.append(f"  linked {linked['kind']} {linked['id']} ({linked['stage']})")
    if body.get("truncated"):
        lines.append("  (more linked entities than shown)")
    lines.append("")
    lines.append(f"{'AT (UTC)':26} {'ENTITY':32} {'STAGE':12} DETAIL")
    for step in body.get("timeline", []):
        entity = f"{step['kind']} {step['id']}"
        detail = step["event_type"]
        if step.get("reason_code"):
            detail = f"{step['exception_stage']}: {step['reason']}/{step['reason_code']}"
        elif step.get("erp_document"):
            detail += f" (ERP {step['erp_document']})"
        elif step.get("status"):
            detail += f" ({step['status']})"
        lines.append(f"{step['at'][:26]:26} {entity[:32]:32} {step['stage']:12} {detail}")
    return lines


def run_trace(args: argparse.Namespace) -> int:
    base = console_url(args.url)
    path = "/".join(urllib.parse.quote(part, safe="") for part in (args.kind, args.id))
    try:
        # A trace shows patient data: the console audits it under this actor.
        status, body = _call(f"{base}/v1/trace/{path}", headers={"X-Carebus-Actor": args.actor})
    except (urllib.error.URLError, OSError) as exc:
        print(f"carebus trace: the ops console at {base} did not answer: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"carebus trace: {body.get('detail') or f'HTTP {status}'}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2) if args.json else "\n".join(format_trace(body)))
    return 0


def _tracker_lag(base: str) -> int:
    _, body = _call(f"{base}/v1/pipeline")
    return sum(
        int(c["pending"]) + int(c["ack_pending"])
        for c in body.get("consumers", [])
        if c.get("tracker")
    )


def run_ops(args: argparse.Namespace) -> int:
    base = console_url(args.url)
    try:
        status, body = _call(f"{base}/v1/tracker/rebuild", "POST")
        if status != 202:
            print(f"carebus ops rebuild: {body.get('detail') or status}", file=sys.stderr)
            return 1
        total = sum(body["to_read"].values())
        print(f"rebuilding: {total} messages to read again ({body['to_read']})")
        deadline = time.monotonic() + args.wait
        lag = total
        while args.wait and time.monotonic() < deadline:  # bounded by --wait
            lag = _tracker_lag(base)
            if lag == 0:
                print("rebuilt: the tracker has read every stream")
                return 0
            time.sleep(1.0)
    except (urllib.error.URLError, OSError) as exc:
        print(f"carebus ops rebuild: the ops console at {base} did not answer: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    if args.wait:
        print(f"still reading after {args.wait:.0f} s: {lag} messages to go", file=sys.stderr)
        return 1
    return 0
