"""The providers' Batch APIs, one small class each: submit, poll, fetch the results.

- OpenAI: the requests go up as a JSONL file (``POST /files``, purpose ``batch``), then
  ``POST /batches``; ``GET /batches/{id}`` until ``completed`` (or ``failed``, ``expired``,
  ``cancelled``); answers and failures come from its output and error files.
- Anthropic: ``POST /v1/messages/batches`` with the requests inline; ``GET …/{id}`` until
  ``processing_status`` is ``ended``; the results are JSONL at ``results_url``.
- Gemini: ``POST /models/{model}:batchGenerateContent`` with inline requests; the operation
  ``GET /batches/{id}`` until ``done``; the answers are inline in its ``response``.

Each request is encoded by callm's own protocol module (so a batch line is exactly what a
direct call would send) and each answer decoded by it. Every HTTP exchange goes through the
client's transport; failures become callm's typed errors.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .._core.errors import APIError, ConfigurationError
from .._core.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from .._client import Client
    from .._core.endpoint import Endpoint

_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
_TRIES = 4


@dataclass(frozen=True, slots=True)
class Poll:
    """What the provider says of a batch: whether it has ended, and the details to keep."""

    ended: bool
    failed: bool  # ended without results (failed, expired, cancelled as a whole)
    status: str
    detail: dict[str, Any]


# (custom id, HTTP status, JSON body) for each answered or failed request.
Result = tuple[str, int, Any]


class BatchAPI:
    """One provider's Batch API (subclasses below); methods are blocking."""

    name: ClassVar[str]

    def __init__(self, client: Client, endpoint: Endpoint) -> None:
        self.client = client
        self.endpoint = endpoint

    def submit(
        self, model: str, requests: Sequence[tuple[str, HttpRequest]]
    ) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def poll(self, batch_id: str, detail: Mapping[str, Any]) -> Poll:
        raise NotImplementedError

    def results(self, batch_id: str, detail: Mapping[str, Any]) -> Iterator[Result]:
        raise NotImplementedError

    # -- HTTP ------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send with the endpoint's credentials; retried on 429, 5xx and dropped connections."""
        request = HttpRequest(
            method,
            url if "://" in url else self.endpoint.url(url),
            {**self.endpoint.request_headers(), **(headers or {})},
            body,
            self.endpoint.secret_headers,
        )
        from .._core.errors import APIConnectionError

        for attempt in range(_TRIES):
            try:
                response = self.client.transport.send(request, self.client.timeout)
            except APIConnectionError:
                if attempt + 1 == _TRIES:
                    raise
                time.sleep(0.5 * 2**attempt)
                continue
            if response.status < 400:
                return response
            if response.status not in _RETRY_STATUSES or attempt + 1 == _TRIES:
                raise self.failure(response)
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def send_json(self, method: str, url: str, value: Any = None) -> Any:
        body = None if value is None else json.dumps(value).encode()
        headers = {"content-type": "application/json"} if body is not None else None
        return json.loads(self.send(method, url, body, headers).body or b"null")

    def failure(self, response: HttpResponse) -> APIError:
        from ..protocols import protocol_for

        return protocol_for(self.endpoint.protocol).decode_failure(self.endpoint, response)


def _body(request: HttpRequest) -> Any:
    assert request.body is not None
    return json.loads(request.body)


def _jsonl(data: bytes) -> Iterator[Any]:
    for line in data.splitlines():
        if line.strip():
            yield json.loads(line)


class OpenAIBatches(BatchAPI):
    name = "openai"
    _ENDED_BADLY = frozenset({"failed", "expired", "cancelled"})

    def submit(
        self, model: str, requests: Sequence[tuple[str, HttpRequest]]
    ) -> tuple[str, dict[str, Any]]:
        lines = [
            json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                        "body": _body(http)})
            for cid, http in requests
        ]  # fmt: skip
        file_id = self._upload(("\n".join(lines) + "\n").encode())
        batch = self.send_json(
            "POST",
            "/batches",
            {"input_file_id": file_id, "endpoint": "/v1/chat/completions",
             "completion_window": "24h"},
        )  # fmt: skip
        return str(batch["id"]), {"input_file_id": file_id, "status": batch.get("status")}

    def _upload(self, content: bytes) -> str:
        boundary = "callm" + uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n',
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="callm-batch.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n',
        ]
        body = parts[0].encode() + parts[1].encode() + content + f"\r\n--{boundary}--\r\n".encode()
        headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
        return str(json.loads(self.send("POST", "/files", body, headers).body)["id"])

    def poll(self, batch_id: str, detail: Mapping[str, Any]) -> Poll:
        batch = self.send_json("GET", f"/batches/{batch_id}")
        status = str(batch.get("status"))
        kept = {
            "status": status,
            "counts": batch.get("request_counts"),
            "output_file_id": batch.get("output_file_id"),
            "error_file_id": batch.get("error_file_id"),
        }
        ended = status == "completed" or status in self._ENDED_BADLY
        return Poll(ended, status in self._ENDED_BADLY, status, {**detail, **kept})

    def results(self, batch_id: str, detail: Mapping[str, Any]) -> Iterator[Result]:
        for key in ("output_file_id", "error_file_id"):
            file_id = detail.get(key)
            if not file_id:
                continue
            content = self.send("GET", f"/files/{file_id}/content").body
            for line in _jsonl(content):
                response = line.get("response") or {}
                if response:
                    yield str(line["custom_id"]), int(response["status_code"]), response["body"]
                else:
                    yield str(line["custom_id"]), 500, {"error": line.get("error")}


class AnthropicBatches(BatchAPI):
    name = "anthropic"
    _STATUS: ClassVar[dict[str, int]] = {"invalid_request_error": 400, "authentication_error": 401,
               "permission_error": 403, "not_found_error": 404, "rate_limit_error": 429,
               "overloaded_error": 529}  # fmt: skip

    def submit(
        self, model: str, requests: Sequence[tuple[str, HttpRequest]]
    ) -> tuple[str, dict[str, Any]]:
        payload = {
            "requests": [{"custom_id": cid, "params": _body(http)} for cid, http in requests]
        }
        batch = self.send_json("POST", "/v1/messages/batches", payload)
        return str(batch["id"]), {"status": batch.get("processing_status")}

    def poll(self, batch_id: str, detail: Mapping[str, Any]) -> Poll:
        batch = self.send_json("GET", f"/v1/messages/batches/{batch_id}")
        status = str(batch.get("processing_status"))
        kept = {"status": status, "counts": batch.get("request_counts"),
                "results_url": batch.get("results_url")}  # fmt: skip
        return Poll(status == "ended", False, status, {**detail, **kept})

    def results(self, batch_id: str, detail: Mapping[str, Any]) -> Iterator[Result]:
        url = detail.get("results_url") or f"/v1/messages/batches/{batch_id}/results"
        for line in _jsonl(self.send("GET", str(url)).body):
            result = line.get("result") or {}
            kind = result.get("type")
            if kind == "succeeded":
                yield str(line["custom_id"]), 200, result["message"]
            elif kind == "errored":
                error = result.get("error") or {}
                inner = error.get("error", error) if isinstance(error, dict) else {}
                status = self._STATUS.get(str(inner.get("type")), 500)
                yield str(line["custom_id"]), status, error
            else:  # canceled, expired
                body = {
                    "type": "error",
                    "error": {
                        "type": "api_error",
                        "message": f"the request was {kind} in the batch",
                    },
                }
                yield str(line["custom_id"]), 500, body  # fmt: skip


class GeminiBatches(BatchAPI):
    name = "gemini"
    _ENDED_BADLY = frozenset({"BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"})

    def submit(
        self, model: str, requests: Sequence[tuple[str, HttpRequest]]
    ) -> tuple[str, dict[str, Any]]:
        url = requests[0][1].url.partition("?")[0].rpartition(":")[0] + ":batchGenerateContent"
        inlined = [{"request": _body(http), "metadata": {"key": cid}} for cid, http in requests]
        payload = {"batch": {"display_name": f"callm {model}",
                             "input_config": {"requests": {"requests": inlined}}}}  # fmt: skip
        operation = self.send_json("POST", url, payload)
        name = str(operation["name"])
        return name, {"status": (operation.get("metadata") or {}).get("state")}

    def poll(self, batch_id: str, detail: Mapping[str, Any]) -> Poll:
        operation = self.send_json("GET", f"/{batch_id}")
        metadata = operation.get("metadata") or {}
        status = str(metadata.get("state"))
        done = bool(operation.get("done")) or status in self._ENDED_BADLY
        kept = {"status": status, "counts": metadata.get("batchStats")}
        if operation.get("error"):
            kept["error"] = operation["error"]
        return Poll(done, status in self._ENDED_BADLY, status, {**detail, **kept})

    def results(self, batch_id: str, detail: Mapping[str, Any]) -> Iterator[Result]:
        operation = self.send_json("GET", f"/{batch_id}")
        response = operation.get("response") or {}
        inlined = (response.get("inlinedResponses") or {}).get("inlinedResponses") or []
        for index, item in enumerate(inlined):
            key = str((item.get("metadata") or {}).get("key", index))
            if "response" in item:
                yield key, 200, item["response"]
            else:
                error = item.get("error") or {}
                yield key, int(error.get("code") or 500), {"error": error}


_APIS: dict[str, type[BatchAPI]] = {"openai_chat": OpenAIBatches, "anthropic": AnthropicBatches,
                                    "gemini": GeminiBatches}  # fmt: skip


def batch_api(client: Client, endpoint: Endpoint) -> BatchAPI:
    """The Batch API of ``endpoint``'s provider, or a ConfigurationError saying there is none."""
    api = _APIS.get(endpoint.protocol)
    # Of the OpenAI-compatible providers only OpenAI itself runs the Batch API.
    if api is None or (api is OpenAIBatches and endpoint.provider != "openai"):
        raise ConfigurationError(
            f"{endpoint.provider} has no Batch API callm can use (OpenAI, Anthropic and Gemini "
            "have); run the batch without --provider-batch"
        )
    return api(client, endpoint)


def poll_interval(default: float) -> float:
    """Seconds between polls: CALLM_BATCH_POLL_S when set (tests use fractions of a second)."""
    value = os.environ.get("CALLM_BATCH_POLL_S")
    try:
        return float(value) if value else default
    except ValueError:
        return default
