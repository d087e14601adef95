#!/usr/bin/env python3
"""Fuzzes a running errand against its own OpenAPI document with schemathesis.

1. Fetches GET /v1/openapi.json and checks it is valid OpenAPI 3.1
   (openapi-spec-validator).
2. Runs schemathesis over every operation with valid and invalid data
   (stateful links included): no 5xx, every answer's status, content type,
   headers and body as documented, invalid data refused.
3. Runs schemathesis again with invalid data only, and checks that it changed
   nothing: stats, queues, the newest job and the newest event are the same
   before and after.

Run it with the Python of the venv scripts/test.sh sets up (.venv), against a
server whose worker is off (so nothing changes by itself) and whose
`[server] max_wait` is short (held requests answer before the client gives up):

    .venv/bin/python scripts/contract.py http://127.0.0.1:7070 [--token T]

The token (or ERRAND_TOKEN) is sent as `Authorization: Bearer`; without one
the server must run with auth off, and missing credentials are not fuzzed.
Exits non-zero on any failure; the last line is `contract: N cases in S s`.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from openapi_spec_validator import validate

# What every answer must satisfy (schemathesis check names).
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "use_after_free",
    "ensure_resource_availability",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:7070")
    parser.add_argument("--token", default=os.environ.get("ERRAND_TOKEN"), help="bearer token (default: $ERRAND_TOKEN)")
    parser.add_argument("--max-examples", type=int, default=60, help="cases per operation and phase")
    parser.add_argument("--time", type=int, default=100, help="seconds of fuzzing in all (the coverage phases add a few)")
    parser.add_argument("--seed", type=int, help="reproduce an earlier run")
    args = parser.parse_args()
    base = args.url.rstrip("/")
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}

    started = time.monotonic()
    document = get(base, "/v1/openapi.json", headers)
    validate(document)
    print(f"contract: {len(document['paths'])} paths, valid OpenAPI {document['openapi']}")
    with tempfile.TemporaryDirectory(prefix="errand-contract-") as tmp:
        schema = Path(tmp) / "openapi.json"
        schema.write_text(json.dumps(document))
        common = [str(schema), "--url", base, "--no-color", "--workers", "1"]
        common += ["--max-examples", str(args.max_examples), "--request-timeout", "30"]
        common += ["--generation-database", "none", "--report-dir", tmp]
        for name, value in headers.items():
            common += ["--header", f"{name}: {value}"]
        checks = CHECKS + (["ignored_auth"] if args.token else [])
        if not args.token:
            # Auth off: a request without credentials is fine, not a failure.
            common += ["--generation-with-security-parameters", "false"]
        if args.seed is not None:
            common += ["--seed", str(args.seed)]
        full_time = max(1, args.time * 2 // 3)
        cases = schemathesis(common + ["--mode", "all", "--checks", ",".join(checks), "--max-time", str(full_time)], tmp)

        # Invalid data only. Fuzzing cancel and retry, whose one input is a
        # job id, yields valid ids too (their invalid ones are the coverage
        # phase's), so it would change jobs with valid requests.
        before = snapshot(base, headers)
        # Logout has no input to make invalid: its one request is a valid
        # logout, which with a bearer token (no session) changes nothing.
        negative = common + ["--mode", "negative", "--checks", ",".join(checks), "--report", "vcr"]
        negative += ["--exclude-operation-id", "logout"]
        cases += schemathesis(negative + ["--phases", "coverage", "--report-vcr-path", f"{tmp}/coverage.yaml"], tmp)
        left = max(1, args.time - int(time.monotonic() - started))
        cases += schemathesis(
            negative
            + ["--phases", "fuzzing", "--max-time", str(left), "--report-vcr-path", f"{tmp}/fuzzing.yaml"]
            + ["--exclude-operation-id", "cancel_job", "--exclude-operation-id", "retry_job"],
            tmp,
        )
        after = snapshot(base, headers)
        accepted = [line for run in ("coverage", "fuzzing") for line in accepted_changes(f"{tmp}/{run}.yaml")]
    if accepted:
        print("contract: the invalid-data run sent requests that were accepted:", *accepted, sep="\n  ", file=sys.stderr)
        return 1
    if before != after:
        print("contract: the invalid-data run changed the server:", file=sys.stderr)
        print(json.dumps({"before": before, "after": after}, indent=1), file=sys.stderr)
        return 1
    print(f"contract: {cases} cases in {time.monotonic() - started:.0f} s")
    return 0


def accepted_changes(cassette: str) -> list:
    """The requests of a recorded run that may change state (not GET) and were answered 2xx or 3xx."""
    with open(cassette) as f:
        recorded = yaml.safe_load(f)
    lines = []
    for interaction in recorded.get("http_interactions") or []:
        request, status = interaction["request"], int(interaction["response"]["status"]["code"])
        if request["method"] not in ("GET", "HEAD") and status < 400:
            lines.append(f"{request['method']} {request['uri']} -> {status}")
    return lines


def get(base: str, path: str, headers: dict) -> dict:
    request = urllib.request.Request(base + path, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def fold_scheduled(value):
    """Counts with `scheduled` added to `available`: the scheduler makes a
    scheduled job available when its time comes, whatever the requests do."""
    if isinstance(value, list):
        return [fold_scheduled(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: fold_scheduled(v) for k, v in value.items() if k != "scheduled"}
    if isinstance(value.get("scheduled"), int):
        out["available"] = out.get("available", 0) + value["scheduled"]
    elif "scheduled" in value:
        out["scheduled"] = fold_scheduled(value["scheduled"])
    return out


def snapshot(base: str, headers: dict) -> dict:
    """What an invalid request must not change."""
    return {
        "stats": fold_scheduled(get(base, "/v1/stats", headers)),
        "queues": fold_scheduled(get(base, "/v1/queues", headers)),
        "newest_job": get(base, "/v1/jobs?limit=1", headers)["jobs"],
        "newest_event": get(base, "/v1/events?limit=1", headers)["events"],
    }


def schemathesis(args: list, cwd: str) -> int:
    """Runs `schemathesis run ARGS` beside this Python in `cwd` (where it
    keeps a cache); its case count, or exits on failure."""
    exe = Path(sys.executable).parent / "schemathesis"
    run = subprocess.run([str(exe), "run", *args], capture_output=True, text=True, cwd=cwd)
    output = run.stdout + run.stderr
    if run.returncode != 0:
        print(output, file=sys.stderr)
        sys.exit(f"contract: schemathesis failed (exit {run.returncode})")
    lines = output.rstrip().splitlines()
    summary = next((i for i, line in enumerate(lines) if "SUMMARY" in line), len(lines) - 4)
    print("\n".join(line for line in lines[summary:] if line.strip()))
    found = re.search(r"(\d+) generated", output)
    if not found:
        print(output, file=sys.stderr)
        sys.exit("contract: schemathesis printed no case count")
    return int(found.group(1))


if __name__ == "__main__":
    sys.exit(main())
