#!/usr/bin/env python3
"""Starts moto's server on 127.0.0.1 for the AWS wire tests, extended where moto 5.2.5 falls
short of what the current AWS SDK for Rust speaks (measured against aws-sdk-* of Cargo.lock):

1. DMS (awsJson 1.1): moto writes timestamps as ISO-8601 strings; awsJson wants epoch seconds
   and the Rust SDK rejects the strings. Every ISO-8601 string in a DMS response is rewritten
   to epoch seconds.
2. DMS DescribeTableStatistics is not implemented by moto. It is served here from statistics
   the tests seed through POST /_cutover/table-statistics, for tasks that exist in moto's DMS
   backend (unknown task: ResourceNotFoundFault, like AWS). Pages hold at most PAGE_SIZE
   tables whatever MaxRecords asks (AWS may also return fewer), so pagination is exercised.
3. CloudWatch: current aws-sdk-cloudwatch speaks Smithy rpcv2Cbor
   (POST /service/GraniteServiceVersion20100801/operation/<Op>), which moto does not serve.
   GetMetricData and PutMetricData are decoded with cbor2 and answered from moto's own
   CloudWatch backend, so metric data lives in one place whichever protocol wrote it.

And for the tests' own needs:

4. A request log: every AWS request is recorded with its service, operation, access key and
   whether it mutates. GET /_cutover/requests?access_key=AKID returns it; the read-only proof
   reads it. (Tests give each client its own access key so parallel tests do not mix.)
5. Faults: POST /_cutover/faults {"access_key", "operation", "status", "code", "message",
   "count"} makes the next `count` matching requests fail with that error, in the protocol of
   the service (awsJson, rpcv2Cbor or restXml).
6. Route 53 changes are INSYNC at once in moto. POST /_cutover/dns-pending {"access_key",
   "polls"} makes changes submitted with that key PENDING for their first `polls` GetChange
   calls, so the wait for INSYNC is exercised.

7. DMS task states move as on AWS, for tasks registered with POST /_cutover/dms-transitions
   {"task_arn", "polls"}: a start shows `starting` for the next `polls` DescribeReplicationTasks
   calls before `running`, a stop `stopping` before `stopped`; a stop while starting (or a
   start while stopping) is refused with InvalidResourceStateFault, as DMS does. POST
   /_cutover/dms-task-state {"task_arn", "status", "message"} puts a task in a state (e.g.
   `failed`, with its LastFailureMessage) until it is started or stopped again.
8. Route 53 as a compare-and-swap store: a DELETE whose TTL, values, alias, weight or set
   identifier differ from the set the zone holds now is refused with InvalidChangeBatch
   (moto checks against its journal of past changes instead). Each accepted change gets its
   own id (moto hands out one fixed id); GetChange of an id never handed out is NoSuchChange.
   POST /_cutover/route53-race {"access_key", "value"}: just before that key's next
   ChangeResourceRecordSets, another writer UPSERTs the record to `value`.
9. STS GetCallerIdentity answers with the account of POST /_cutover/accounts {"access_key",
   "account"} for that key (moto answers one account for every key).

GET /_cutover/health answers "ok" once the server is up. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import json
import os
import re
import sys
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Any, Callable, Iterable

import cbor2
from werkzeug.serving import run_simple

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

PAGE_SIZE = 20
CBOR_PATH = re.compile(r"^/service/(?P<service>[^/]+)/operation/(?P<op>[^/]+)$")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")
CREDENTIAL = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
ROUTE53_CHANGE_ID = re.compile(r"<Id>(/change/[^<]+)</Id>")
R53_NS = "{https://route53.amazonaws.com/doc/2013-04-01/}"
READ_PREFIXES = ("Describe", "List", "Get", "FilterLogEvents")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def utc_naive(value: dt.datetime) -> dt.datetime:
    """moto keeps naive UTC datetimes."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def epoch(value: dt.datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def iso_to_epoch(node: Any) -> Any:
    """Rewrites every ISO-8601 string in a JSON document to epoch seconds."""
    if isinstance(node, dict):
        return {k: iso_to_epoch(v) for k, v in node.items()}
    if isinstance(node, list):
        return [iso_to_epoch(v) for v in node]
    if isinstance(node, str) and ISO.match(node):
        try:
            return epoch(dt.datetime.fromisoformat(node.replace("Z", "+00:00")))
        except ValueError:
            return node
    return node


def to_datetimes(node: Any) -> Any:
    """CBOR tag 1 decodes to aware datetimes; moto's backends want naive UTC."""
    if isinstance(node, dict):
        return {k: to_datetimes(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_datetimes(v) for v in node]
    if isinstance(node, dt.datetime):
        return utc_naive(node)
    return node


class Call:
    """One AWS request as the launcher sees it."""

    def __init__(self, environ: Environ, body: bytes):
        self.environ = environ
        self.body = body
        self.method = environ.get("REQUEST_METHOD", "GET")
        self.path = environ.get("PATH_INFO", "")
        self.query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        auth = environ.get("HTTP_AUTHORIZATION", "")
        m = CREDENTIAL.search(auth)
        self.access_key = m.group(1) if m else ""
        self.region = m.group(2) if m else "us-east-1"
        self.service = m.group(3).lower() if m else ""
        self.protocol = "query"
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        cbor_path = CBOR_PATH.match(self.path)
        if cbor_path:
            self.protocol = "cbor"
            self.operation = cbor_path.group("op")
        elif target:
            self.protocol = "json"
            self.operation = target.split(".")[-1]
        elif self.service == "route53":
            self.protocol = "rest-xml"
            self.operation = route53_operation(self.method, self.path)
        else:
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            self.operation = (form.get("Action") or self.query.get("Action") or ["?"])[0]
        if self.protocol == "rest-xml":
            self.mutating = self.method != "GET"
        else:
            self.mutating = not self.operation.startswith(READ_PREFIXES)

    def account(self) -> str:
        if "MOTO_ACCOUNT_ID" in os.environ:
            return os.environ["MOTO_ACCOUNT_ID"]
        from moto.iam.models import get_account_id_from

        return get_account_id_from(self.access_key)


def route53_operation(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p][1:]  # drop the API version
    if parts[:1] == ["change"] and method == "GET":
        return "GetChange"
    if parts[:1] == ["hostedzonesbyname"]:
        return "ListHostedZonesByName"
    if parts[:1] == ["hostedzone"]:
        if len(parts) == 1:
            return "CreateHostedZone" if method == "POST" else "ListHostedZones"
        if len(parts) >= 3 and parts[2] == "rrset":
            return "ChangeResourceRecordSets" if method == "POST" else "ListResourceRecordSets"
        if len(parts) == 2:
            return {"GET": "GetHostedZone", "DELETE": "DeleteHostedZone"}.get(method, method)
    return f"{method} {path}"


class Launcher:
    def __init__(self) -> None:
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.table_stats: dict[str, list[dict[str, Any]]] = {}
        self.faults: list[dict[str, Any]] = []
        self.dns_pending_polls: dict[str, int] = {}
        self.pending_changes: dict[str, int] = {}
        # DMS: task ARN -> polls a transition shows its intermediate state for.
        self.dms_transition_polls: dict[str, int] = {}
        # DMS: task ARN -> {"shown", "left", "final"} while a transition is under way, or
        # {"shown", "message"} for a state put by the test (left None: until the next start/stop).
        self.dms_overlay: dict[str, dict[str, Any]] = {}
        self.change_ids = 0
        self.issued_changes: set[str] = set()
        self.accounts: dict[str, str] = {}
        # Route 53: access key -> a value another writer UPSERTs just before that key's next
        # ChangeResourceRecordSets is served (a concurrent change between read and flip).
        self.races: dict[str, str] = {}

    # -- WSGI ---------------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_cutover/"):
            return self.control(environ, body, start_response)
        call = Call(environ, body)
        status, headers, out = self.serve(call)
        with self.lock:
            self.requests.append(
                {
                    "service": call.service,
                    "operation": call.operation,
                    "method": call.method,
                    "path": call.path,
                    "access_key": call.access_key,
                    "mutating": call.mutating,
                    "status": int(status.split()[0]),
                }
            )
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(out))))
        start_response(status, headers)
        return [out]

    def serve(self, call: Call) -> tuple[str, list[tuple[str, str]], bytes]:
        fault = self.take_fault(call)
        if fault is not None:
            return error_response(call, fault["status"], fault["code"], fault["message"])
        if call.protocol == "cbor" and call.service == "monitoring":
            return self.cloudwatch_cbor(call)
        if call.service == "dms" and call.operation == "DescribeTableStatistics":
            return self.describe_table_statistics(call)
        if call.service == "sts" and call.operation == "GetCallerIdentity" and call.access_key in self.accounts:
            return self.caller_identity(call)
        if call.service == "dms":
            refused = self.dms_refuse(call)
            if refused is not None:
                return refused
        if call.service == "route53" and call.operation == "ChangeResourceRecordSets":
            refused = self.route53_compare(call)
            if refused is not None:
                return refused
        if call.service == "route53" and call.operation == "GetChange":
            change = "/change/" + call.path.rstrip("/").rsplit("/", 1)[-1]
            with self.lock:
                known = change in self.issued_changes
            if not known:
                return error_response(call, 404, "NoSuchChange", f"A change with the specified change ID does not exist: {change}")
        status, headers, out = self.pass_to_moto(call)
        if call.service == "dms" and out[:1] == b"{":
            try:
                doc = iso_to_epoch(json.loads(out))
                if status.startswith("200"):
                    doc = self.dms_states(call, doc)
                out = json.dumps(doc).encode()
            except ValueError:
                pass
        if call.service == "route53":
            out = self.route53_unique_change(call, out)
            out = self.route53_pending(call, out)
        return status, headers, out

    def pass_to_moto(self, call: Call) -> tuple[str, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = status
            captured["headers"] = headers
            return lambda data: None

        chunks = self.moto(call.environ, capture)
        try:
            out = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        return captured["status"], captured["headers"], out

    # -- the launcher's own routes --------------------------------------------------------

    def control(self, environ: Environ, body: bytes, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        status, payload = "200 OK", {"ok": True}
        try:
            data = json.loads(body) if body else {}
            if path == "/_cutover/health":
                status, payload = "200 OK", "ok"
            elif path == "/_cutover/requests" and method == "GET":
                key = (query.get("access_key") or [None])[0]
                with self.lock:
                    payload = [r for r in self.requests if key is None or r["access_key"] == key]
            elif path == "/_cutover/table-statistics" and method == "POST":
                with self.lock:
                    self.table_stats[data["task_arn"]] = list(data["tables"])
            elif path == "/_cutover/faults" and method == "POST":
                fault = {
                    "access_key": data["access_key"],
                    "operation": data.get("operation", "*"),
                    "status": int(data.get("status", 500)),
                    "code": data.get("code", "InternalFailure"),
                    "message": data.get("message", "injected by the test launcher"),
                    "count": int(data.get("count", 1)),
                }
                with self.lock:
                    self.faults.append(fault)
            elif path == "/_cutover/dns-pending" and method == "POST":
                with self.lock:
                    self.dns_pending_polls[data["access_key"]] = int(data["polls"])
            elif path == "/_cutover/dms-transitions" and method == "POST":
                with self.lock:
                    self.dms_transition_polls[data["task_arn"]] = int(data["polls"])
            elif path == "/_cutover/dms-task-state" and method == "POST":
                with self.lock:
                    self.dms_overlay[data["task_arn"]] = {
                        "shown": data["status"],
                        "left": None,
                        "message": data.get("message"),
                    }
            elif path == "/_cutover/route53-race" and method == "POST":
                with self.lock:
                    self.races[data["access_key"]] = data["value"]
            elif path == "/_cutover/accounts" and method == "POST":
                with self.lock:
                    self.accounts[data["access_key"]] = str(data["account"])
            else:
                status, payload = "404 Not Found", {"error": f"no route {method} {path}"}
        except (KeyError, ValueError, TypeError) as e:
            status, payload = "400 Bad Request", {"error": f"bad request: {e!r}"}
        out = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        content_type = "text/plain" if isinstance(payload, str) else "application/json"
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(out)))])
        return [out]

    def take_fault(self, call: Call) -> dict[str, Any] | None:
        with self.lock:
            for fault in self.faults:
                if fault["access_key"] != call.access_key:
                    continue
                if fault["operation"] not in ("*", call.operation):
                    continue
                fault["count"] -= 1
                if fault["count"] <= 0:
                    self.faults.remove(fault)
                return dict(fault)
        return None

    # -- DMS DescribeTableStatistics ---------------------------------------------------------

    def describe_table_statistics(self, call: Call) -> tuple[str, list[tuple[str, str]], bytes]:
        from moto.dms.models import dms_backends

        params = json.loads(call.body or b"{}")
        arn = params.get("ReplicationTaskArn", "")
        backend = dms_backends[call.account()][call.region]
        if arn not in backend.replication_tasks:
            return error_response(
                call, 400, "ResourceNotFoundFault", "Replication task could not be found."
            )
        with self.lock:
            tables = list(self.table_stats.get(arn, []))
        start = int(params.get("Marker") or 0)
        page = min(int(params.get("MaxRecords") or 100), PAGE_SIZE)
        result: dict[str, Any] = {
            "ReplicationTaskArn": arn,
            "TableStatistics": iso_to_epoch(tables[start : start + page]),
        }
        if start + page < len(tables):
            result["Marker"] = str(start + page)
        return json_response(200, result)

    # -- CloudWatch over rpcv2Cbor --------------------------------------------------------

    def cloudwatch_cbor(self, call: Call) -> tuple[str, list[tuple[str, str]], bytes]:
        from moto.cloudwatch.models import cloudwatch_backends

        backend = cloudwatch_backends[call.account()][call.region]
        body = call.body
        if call.environ.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip":
            body = gzip.decompress(body)  # PutMetricData compresses large batches
        params = to_datetimes(cbor2.loads(body)) if body else {}
        try:
            if call.operation == "PutMetricData":
                backend.put_metric_data(params["Namespace"], params.get("MetricData", []))
                return cbor_response(200, {})
            if call.operation == "GetMetricData":
                results = backend.get_metric_data(
                    queries=params.get("MetricDataQueries", []),
                    start_time=params["StartTime"],
                    end_time=params["EndTime"],
                    scan_by=params.get("ScanBy") or "TimestampDescending",
                )
                return cbor_response(
                    200,
                    {
                        "MetricDataResults": [
                            {
                                "Id": r["id"],
                                "Label": r["label"],
                                "Timestamps": [cbor2.CBORTag(1, epoch(t)) for t in r["timestamps"]],
                                "Values": [float(v) for v in r["values"]],
                                "StatusCode": r["status_code"],
                            }
                            for r in results
                        ],
                        "Messages": [],
                    },
                )
        except Exception as e:  # moto's validation errors carry their own code
            code = getattr(e, "error_type", None) or getattr(e, "code", None) or "InvalidParameterValue"
            return error_response(call, 400, str(code), str(getattr(e, "message", e)))
        return error_response(
            call, 400, "UnknownOperationException", f"{call.operation} is not served over CBOR here"
        )

    # -- STS -------------------------------------------------------------------------------

    def caller_identity(self, call: Call) -> tuple[str, list[tuple[str, str]], bytes]:
        account = self.accounts[call.access_key]
        xml = (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<GetCallerIdentityResult>"
            f"<Arn>arn:aws:iam::{account}:user/cutover-test</Arn>"
            f"<UserId>AIDA{account}</UserId><Account>{account}</Account>"
            "</GetCallerIdentityResult>"
            "<ResponseMetadata><RequestId>cutover-test</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        )
        return "200 OK", [("Content-Type", "text/xml")], xml.encode()

    # -- DMS task states -------------------------------------------------------------------

    def dms_refuse(self, call: Call) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """Stop while starting, start while stopping: DMS refuses both."""
        if call.operation not in ("StartReplicationTask", "StopReplicationTask"):
            return None
        arn = json.loads(call.body or b"{}").get("ReplicationTaskArn", "")
        with self.lock:
            shown = (self.dms_overlay.get(arn) or {}).get("shown")
        busy = {"StopReplicationTask": ("starting",), "StartReplicationTask": ("stopping", "starting")}
        if shown in busy[call.operation]:
            return error_response(
                call, 400, "InvalidResourceStateFault",
                f"Replication task is currently {shown}; the operation cannot be performed now",
            )
        return None

    def dms_states(self, call: Call, doc: dict[str, Any]) -> dict[str, Any]:
        """Shows each registered task's state as AWS would: transitions over a few polls."""
        if call.operation in ("StartReplicationTask", "StopReplicationTask"):
            task = doc.get("ReplicationTask") or {}
            arn = task.get("ReplicationTaskArn", "")
            with self.lock:
                polls = self.dms_transition_polls.get(arn, 0)
                self.dms_overlay.pop(arn, None)
                if polls > 0:
                    shown = "starting" if call.operation == "StartReplicationTask" else "stopping"
                    self.dms_overlay[arn] = {"shown": shown, "left": polls, "final": task.get("Status")}
                    task["Status"] = shown
            return doc
        if call.operation == "DescribeReplicationTasks":
            with self.lock:
                for task in doc.get("ReplicationTasks", []):
                    arn = task.get("ReplicationTaskArn", "")
                    o = self.dms_overlay.get(arn)
                    if o is None:
                        continue
                    task["Status"] = o["shown"]
                    if o.get("message"):
                        task["LastFailureMessage"] = o["message"]
                    if o["left"] is not None:
                        o["left"] -= 1
                        if o["left"] <= 0:
                            del self.dms_overlay[arn]
        return doc

    # -- Route 53 compare-and-swap ----------------------------------------------------------

    def route53_compare(self, call: Call) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """Refuses a DELETE of a set that is not exactly what the zone holds now."""
        from moto.route53.models import route53_backends

        try:
            root = ET.fromstring(call.body)
        except ET.ParseError:
            return None
        zone_id = call.path.split("/hostedzone/", 1)[-1].split("/", 1)[0]
        backend = route53_backends[call.account()]["aws"]
        try:
            zone = backend.get_hosted_zone(zone_id)
        except Exception:
            return None  # moto answers NoSuchHostedZone itself
        with self.lock:
            race = self.races.pop(call.access_key, None)
        if race is not None:
            self.concurrent_upsert(call, root, race)
        for change in root.iter(f"{R53_NS}Change"):
            if change.findtext(f"{R53_NS}Action") != "DELETE":
                continue
            rrset = change.find(f"{R53_NS}ResourceRecordSet")
            if rrset is None:
                continue
            want = rrset_key(rrset)
            held = [r for r in zone.rrsets if held_key(r) == want]
            if not held:
                name, rtype = want[0], want[1]
                return error_response(
                    call, 400, "InvalidChangeBatch",
                    f"[Tried to delete resource record set [name='{name}', type='{rtype}'] but it was not found]",
                )
            if not any(held_value(r) == rrset_value(rrset) for r in held):
                name, rtype = want[0], want[1]
                return error_response(
                    call, 400, "InvalidChangeBatch",
                    f"[Tried to delete resource record set [name='{name}', type='{rtype}'] but the values provided do not match the current values]",
                )
        return None

    def concurrent_upsert(self, call: Call, batch: ET.Element, value: str) -> None:
        """Another writer points the batch's first record at `value` (TTL kept), through
        moto's own API like any client."""
        rrset = next(batch.iter(f"{R53_NS}ResourceRecordSet"), None)
        if rrset is None:
            return
        name = rrset.findtext(f"{R53_NS}Name") or ""
        rtype = rrset.findtext(f"{R53_NS}Type") or "CNAME"
        ttl = rrset.findtext(f"{R53_NS}TTL") or "60"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
            "<ChangeBatch><Changes><Change><Action>UPSERT</Action><ResourceRecordSet>"
            f"<Name>{name}</Name><Type>{rtype}</Type><TTL>{ttl}</TTL>"
            f"<ResourceRecords><ResourceRecord><Value>{value}</Value></ResourceRecord></ResourceRecords>"
            "</ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
        ).encode()
        environ = dict(call.environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        other = Call(environ, body)
        status, _, out = self.pass_to_moto(other)
        if not status.startswith("200"):
            raise RuntimeError(f"the concurrent UPSERT failed: {status} {out[:300]!r}")
        call.environ["wsgi.input"] = io.BytesIO(call.body)

    def route53_unique_change(self, call: Call, out: bytes) -> bytes:
        if call.operation != "ChangeResourceRecordSets":
            return out
        text = out.decode("utf-8", "replace")
        m = ROUTE53_CHANGE_ID.search(text)
        if not m:
            return out
        with self.lock:
            self.change_ids += 1
            new = f"/change/C{os.getpid():05d}{self.change_ids:08d}"
            self.issued_changes.add(new)
        return text.replace(m.group(1), new).encode()

    # -- Route 53 change propagation -----------------------------------------------------------

    def route53_pending(self, call: Call, out: bytes) -> bytes:
        text = out.decode("utf-8", "replace")
        m = ROUTE53_CHANGE_ID.search(text)
        with self.lock:
            if call.operation == "ChangeResourceRecordSets" and m:
                polls = self.dns_pending_polls.get(call.access_key, 0)
                if polls > 0:
                    self.pending_changes[m.group(1)] = polls
                    text = text.replace("<Status>INSYNC</Status>", "<Status>PENDING</Status>")
            elif call.operation == "GetChange" and m:
                left = self.pending_changes.get(m.group(1), 0)
                if left > 0:
                    self.pending_changes[m.group(1)] = left - 1
                    text = text.replace("<Status>INSYNC</Status>", "<Status>PENDING</Status>")
        return text.encode()


def rrset_key(rrset: ET.Element) -> tuple[str, str, str | None]:
    name = (rrset.findtext(f"{R53_NS}Name") or "").rstrip(".").lower().replace("\\052", "*")
    return name, rrset.findtext(f"{R53_NS}Type") or "", rrset.findtext(f"{R53_NS}SetIdentifier")


def rrset_value(rrset: ET.Element) -> tuple[Any, ...]:
    ttl = rrset.findtext(f"{R53_NS}TTL")
    weight = rrset.findtext(f"{R53_NS}Weight")
    alias = rrset.find(f"{R53_NS}AliasTarget")
    alias_name = None
    if alias is not None:
        alias_name = (alias.findtext(f"{R53_NS}DNSName") or "").rstrip(".").lower()
    values = sorted(v.text or "" for v in rrset.iter(f"{R53_NS}Value"))
    return (
        int(ttl) if ttl is not None else None,
        int(weight) if weight is not None else None,
        alias_name,
        tuple(values),
    )


def held_key(r: Any) -> tuple[str, str, str | None]:
    return r.name.rstrip(".").lower(), r.type, r.set_identifier


def held_value(r: Any) -> tuple[Any, ...]:
    alias_name = None
    if r.alias_target:
        alias_name = (r.alias_target.get("DNSName") or "").rstrip(".").lower()
    return (
        int(r.ttl) if r.ttl is not None and not r.alias_target else None,
        int(r.weight) if r.weight is not None else None,
        alias_name,
        tuple(sorted(r.records or [])),
    )


def read_body(environ: Environ) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    return b""


def json_response(status: int, payload: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    return (
        f"{status} {'OK' if status == 200 else 'Error'}",
        [("Content-Type", "application/x-amz-json-1.1")],
        json.dumps(payload).encode(),
    )


def cbor_response(status: int, payload: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    return (
        f"{status} {'OK' if status == 200 else 'Error'}",
        [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")],
        cbor2.dumps(payload),
    )


def error_response(call: Call, status: int, code: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """An AWS error in the protocol the client speaks."""
    if call.protocol == "cbor":
        return cbor_response(status, {"__type": code, "message": message})
    if call.protocol == "json":
        out = json_response(status, {"__type": code, "message": message})
        return out[0], out[1] + [("x-amzn-ErrorType", code)], out[2]
    kind = "Receiver" if status >= 500 else "Sender"
    xml = (
        '<?xml version="1.0"?>\n<ErrorResponse><Error>'
        f"<Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
        "</Error><RequestId>cutover-test</RequestId></ErrorResponse>"
    )
    return f"{status} Error", [("Content-Type", "text/xml")], xml.encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("MOTO_PORT", "5000")))
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    print(f"moto launcher listening on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    run_simple(
        "127.0.0.1",
        args.port,
        Launcher(),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
