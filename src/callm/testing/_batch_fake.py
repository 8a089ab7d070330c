"""The providers' Batch APIs, faked: OpenAI Files + Batches, Anthropic Message Batches and
Gemini batch mode, each in its own wire shapes.

A submitted batch moves through the provider's states over ``batch_delay`` seconds (OpenAI
``validating → in_progress → finalizing → completed``; Anthropic ``in_progress → ended``;
Gemini ``BATCH_STATE_PENDING → RUNNING → SUCCEEDED``). Its requests are answered one by one
by the fake's own generation endpoint, over loopback HTTP, so the scripted queue decides each
answer: a queued :class:`Fault` makes that request fail inside the batch (a partial failure)
while the others succeed. Those inner requests are recorded like any other, with an
``x-callm-fake-batch`` header naming their batch.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import ClientSession, web

from ._http import AddRoute, record_request
from ._script import RecordedRequest
from ._state import ServerState
from ._wire import dumps

BATCH_HEADER = "x-callm-fake-batch"
_INNER_CONCURRENCY = 4
_JSON = "application/json"
_GEMINI_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1main."
_GEMINI_STATES = {
    "validating": "BATCH_STATE_PENDING",
    "in_progress": "BATCH_STATE_RUNNING",
    "finalizing": "BATCH_STATE_RUNNING",
    "completed": "BATCH_STATE_SUCCEEDED",
}


@dataclass
class _Batch:
    """One submitted batch: its requests, its state, and the answers as they come."""

    id: str
    kind: str  # "openai" | "anthropic" | "gemini"
    requests: list[tuple[str, str, dict[str, object]]]  # (custom id, path, body)
    auth: dict[str, str]
    created: float = field(default_factory=time.time)
    status: str = "validating"
    results: list[tuple[str, int, object]] = field(default_factory=list)  # (id, status, body)
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    ended: float | None = None
    model: str = ""


class _BatchRoutes:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.files: dict[str, tuple[str, bytes]] = {}  # id -> (purpose, content)
        self.batches: dict[str, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    def _id(self, prefix: str) -> str:
        return f"{prefix}{self.state.new_id()}{next(self._ids):04d}"

    async def _admit(self, request: web.Request) -> RecordedRequest:
        record = await record_request(request)
        self.state.record(record)
        key = self.state.api_key
        given = _key(request.headers)
        if key is not None and given != key:
            raise web.HTTPUnauthorized(
                body=dumps({"error": {"message": "invalid api key", "type": "invalid_request_error",
                                      "code": "invalid_api_key"}}),
                content_type=_JSON,
            )  # fmt: skip
        return record

    # -- OpenAI: files and batches ---------------------------------------------------------

    async def upload(self, request: web.Request) -> web.StreamResponse:
        record = await self._admit(request)
        fields = _form_fields(record.headers.get("content-type", ""), record.body)
        if "file" not in fields:
            return _openai_error(400, "file is required", "file")
        name, content = fields["file"]
        purpose = fields.get("purpose", ("", b""))[1].decode()
        file_id = self._id("file-")
        self.files[file_id] = (purpose, content)
        return _json(_file_object(file_id, purpose, content, name))

    async def file_content(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request)
        found = self.files.get(request.match_info["file_id"])
        if found is None:
            return _openai_error(404, "No such File object", "id")
        return web.Response(body=found[1], content_type="application/jsonl")

    async def openai_create(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request)
        body = await request.json()
        file_id = body.get("input_file_id")
        if file_id not in self.files:
            return _openai_error(400, f"Invalid 'input_file_id': '{file_id}'.", "input_file_id")
        requests = []
        for line in self.files[file_id][1].decode().splitlines():
            if line.strip():
                item = json.loads(line)
                requests.append((item["custom_id"], item["url"], item["body"]))
        batch = _Batch(self._id("batch_"), "openai", requests, _auth(request.headers))
        batch.input_file_id = file_id
        self._start(batch, request)
        return _json(self._openai_object(batch))

    async def openai_get(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request)
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None or batch.kind != "openai":
            return _openai_error(404, "No batch found with that id", "batch_id")
        return _json(self._openai_object(batch))

    def _openai_object(self, batch: _Batch) -> dict[str, object]:
        failed = sum(1 for _, status, _ in batch.results if status >= 400)
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(batch.created),
            "completed_at": int(batch.ended) if batch.ended else None,
            "request_counts": {
                "total": len(batch.requests),
                "completed": len(batch.results) - failed,
                "failed": failed,
            },
            "metadata": None,
        }

    def _openai_files(self, batch: _Batch) -> None:
        ok: list[str] = []
        bad: list[str] = []
        for custom_id, status, body in batch.results:
            line = {
                "id": self._id("batch_req_"),
                "custom_id": custom_id,
                "response": {"status_code": status, "request_id": self._id("req_"), "body": body},
                "error": None,
            }
            (ok if status < 400 else bad).append(dumps(line))
        for lines, attr in ((ok, "output_file_id"), (bad, "error_file_id")):
            if lines:
                file_id = self._id("file-")
                self.files[file_id] = ("batch_output", ("\n".join(lines) + "\n").encode())
                setattr(batch, attr, file_id)

    # -- Anthropic: message batches ---------------------------------------------------------

    async def anthropic_create(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request)
        body = await request.json()
        requests = [(r["custom_id"], "/v1/messages", r["params"]) for r in body.get("requests", [])]
        if not requests:
            return _anthropic_error(400, "requests: at least one request is required")
        batch = _Batch(self._id("msgbatch_"), "anthropic", requests, _auth(request.headers))
        self._start(batch, request)
        return _json(self._anthropic_object(batch, request))

    async def anthropic_get(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request)
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None or batch.kind != "anthropic":
            return _anthropic_error(404, "batch not found")
        return _json(self._anthropic_object(batch, request))

    async def anthropic_results(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request)
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None or batch.status != "completed":
            return _anthropic_error(404, "results are not available yet")
        lines = []
        for custom_id, status, body in batch.results:
            result = (
                {"type": "succeeded", "message": body}
                if status < 400
                else {"type": "errored", "error": body}
            )
            lines.append(dumps({"custom_id": custom_id, "result": result}))
        return web.Response(body="\n".join(lines) + "\n", content_type="application/x-jsonl")

    def _anthropic_object(self, batch: _Batch, request: web.Request) -> dict[str, object]:
        done = batch.status == "completed"
        errored = sum(1 for _, status, _ in batch.results if status >= 400)
        origin = str(request.url.origin())
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if done else "in_progress",
            "request_counts": {
                "processing": len(batch.requests) - len(batch.results) if not done else 0,
                "succeeded": len(batch.results) - errored,
                "errored": errored,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": _rfc3339(batch.created),
            "ended_at": _rfc3339(batch.ended) if batch.ended else None,
            "expires_at": _rfc3339(batch.created + 86400),
            "results_url": f"{origin}/v1/messages/batches/{batch.id}/results" if done else None,
        }

    # -- Gemini: batch mode -----------------------------------------------------------------

    async def gemini_create(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request)
        model = request.match_info["model"]
        body = await request.json()
        config = body.get("batch", {}).get("input_config") or body.get("batch", {}).get(
            "inputConfig", {}
        )
        inlined = config.get("requests", {}).get("requests", [])
        requests = [
            (r.get("metadata", {}).get("key", str(i)), f"/v1beta/models/{model}:generateContent",
             r["request"])
            for i, r in enumerate(inlined)
        ]  # fmt: skip
        batch = _Batch("batches/" + self._id(""), "gemini", requests, _auth(request.headers))
        batch.model = model
        self._start(batch, request)
        return _json(self._gemini_operation(batch))

    async def gemini_get(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request)
        batch = self.batches.get("batches/" + request.match_info["batch_id"])
        if batch is None:
            return web.Response(
                status=404,
                body=dumps({"error": {"code": 404, "message": "Batch not found.",
                                      "status": "NOT_FOUND"}}),
                content_type=_JSON,
            )  # fmt: skip
        return _json(self._gemini_operation(batch))

    def _gemini_operation(self, batch: _Batch) -> dict[str, object]:
        state = _GEMINI_STATES[batch.status]
        operation: dict[str, object] = {
            "name": batch.id,
            "metadata": {
                "@type": _GEMINI_TYPES + "GenerateContentBatch",
                "name": batch.id,
                "model": f"models/{batch.model}",
                "displayName": "callm batch",
                "createTime": _rfc3339(batch.created),
                "state": state,
                "batchStats": {
                    "requestCount": str(len(batch.requests)),
                    "successfulRequestCount": str(sum(s < 400 for _, s, _ in batch.results)),
                    "failedRequestCount": str(sum(s >= 400 for _, s, _ in batch.results)),
                },
            },
        }
        if batch.status == "completed":
            operation["done"] = True
            inlined = [
                {"metadata": {"key": key}, **_gemini_result(status, body)}
                for key, status, body in batch.results
            ]
            operation["response"] = {
                "@type": _GEMINI_TYPES + "GenerateContentBatchOutput",
                "inlinedResponses": {"inlinedResponses": inlined},
            }
        return operation

    # -- processing -------------------------------------------------------------------------

    def _start(self, batch: _Batch, request: web.Request) -> None:
        self.batches[batch.id] = batch
        task = asyncio.ensure_future(self._process(batch, str(request.url.origin())))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, batch: _Batch, origin: str) -> None:
        """Move through the states, answering each request through the fake's own endpoint."""
        delay = self.state.batch_delay
        await asyncio.sleep(delay * 0.3)
        batch.status = "in_progress"
        gate = asyncio.Semaphore(_INNER_CONCURRENCY)
        headers = {**batch.auth, BATCH_HEADER: batch.id, "content-type": _JSON}
        async with ClientSession() as session:

            async def answer(custom_id: str, path: str, body: dict[str, object]) -> None:
                async with (
                    gate,
                    session.post(origin + path, data=dumps(body), headers=headers) as r,
                ):
                    payload = await r.read()
                    batch.results.append((custom_id, r.status, _loads(payload)))

            await asyncio.gather(*(answer(*item) for item in batch.requests))
        batch.status = "finalizing"
        await asyncio.sleep(delay * 0.3)
        if batch.kind == "openai":
            self._openai_files(batch)
        batch.ended = time.time()
        batch.status = "completed"


def _gemini_result(status: int, body: object) -> dict[str, object]:
    if status < 400:
        return {"response": body}
    return {"error": body.get("error", body) if isinstance(body, dict) else body}


def _form_fields(content_type: str, body: bytes) -> dict[str, tuple[str, bytes]]:
    """The fields of a multipart/form-data body: name -> (file name, content)."""
    from email.parser import BytesParser
    from email.policy import default

    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=default).parsebytes(head + body)
    fields = {}
    if message.is_multipart():
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(data, bytes):
                fields[name] = (part.get_filename() or "", data)
    return fields


def _loads(payload: bytes) -> object:
    try:
        return json.loads(payload)
    except ValueError:
        return {"error": {"message": payload.decode(errors="replace")}}


def _key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:]
    return headers.get("x-api-key") or headers.get("x-goog-api-key")


def _auth(headers: Mapping[str, str]) -> dict[str, str]:
    """The submitter's credentials, reused for the inner requests."""
    names = ("authorization", "x-api-key", "x-goog-api-key", "anthropic-version")
    return {name: headers[name] for name in names if name in headers}


def _file_object(file_id: str, purpose: str, content: bytes, name: str) -> dict[str, object]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(content),
        "created_at": int(time.time()),
        "filename": name,
        "purpose": purpose,
    }


def _rfc3339(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def _json(value: object) -> web.Response:
    return web.Response(body=dumps(value), content_type=_JSON)


def _openai_error(status: int, message: str, param: str | None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": None}}  # fmt: skip
    return web.Response(status=status, body=dumps(body), content_type=_JSON)


def _anthropic_error(status: int, message: str) -> web.Response:
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.Response(status=status, body=dumps(body), content_type=_JSON)


def register(add: AddRoute, state: ServerState) -> None:
    """Add the Batch API routes (before the generation routes, which they must not shadow)."""
    routes = _BatchRoutes(state)
    add("POST", "/v1/files", routes.upload)
    add("GET", "/v1/files/{file_id}/content", routes.file_content)
    add("POST", "/v1/batches", routes.openai_create)
    add("GET", "/v1/batches/{batch_id}", routes.openai_get)
    add("POST", "/v1/messages/batches", routes.anthropic_create)
    add("GET", "/v1/messages/batches/{batch_id}", routes.anthropic_get)
    add("GET", "/v1/messages/batches/{batch_id}/results", routes.anthropic_results)
    add("POST", "/v1beta/models/{model}:batchGenerateContent", routes.gemini_create)
    add("GET", "/v1beta/batches/{batch_id}", routes.gemini_get)
