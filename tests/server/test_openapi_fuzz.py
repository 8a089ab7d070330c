"""Schemathesis against the OpenAPI document the gateway serves: every operation, with valid
and invalid input (bounded examples, loopback only), answers without a 5xx and without
crashing the gateway."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from gateway_process import GatewayProcess
from hypothesis import HealthCheck, given, settings

from callm.server._openapi import openapi_document
from callm.testing import FakeOpenAIServer

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402

EXAMPLES = 20  # per operation and mode: ~800 requests in all


def _cases() -> list[tuple[str, str]]:
    """(operation, mode): invalid input only for operations that take some."""
    out = []
    for path, item in openapi_document()["paths"].items():  # type: ignore[attr-defined]
        for method, operation in item.items():
            if method == "parameters":
                continue
            label = f"{method.upper()} {path}"
            out.append((label, "positive"))
            if "requestBody" in operation or "parameters" in operation or "parameters" in item:
                out.append((label, "negative"))
    return out


@pytest.fixture(scope="module")
def served(gateway: GatewayProcess) -> Any:
    """The document as the gateway serves it, loaded by schemathesis."""
    with urllib.request.urlopen(gateway.url + "/openapi.json", timeout=10) as r:
        document = json.loads(r.read())
    assert document == openapi_document()
    return schemathesis.openapi.from_dict(document)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="module")
def caller_key(gateway: GatewayProcess) -> str:
    return gateway.new_key()


@pytest.mark.parametrize(("label", "mode"), _cases())
def test_no_input_makes_a_5xx(  # noqa: PLR0917 (fixtures)
    gateway: GatewayProcess,
    upstream: FakeOpenAIServer,
    served: Any,
    session: requests.Session,
    caller_key: str,
    label: str,
    mode: str,
) -> None:
    operation = next(op.ok() for op in served.get_all_operations() if op.ok().label == label)
    key = gateway.master_key if operation.path.startswith("/admin") else caller_key
    headers = {"authorization": f"Bearer {key}"}
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        upstream.clear()
        response = case.call(base_url=gateway.url, session=session, headers=headers, timeout=30)
        case.validate_response(response, checks=[not_a_server_error])

    check()
    assert gateway.proc is not None and gateway.proc.poll() is None  # still serving
