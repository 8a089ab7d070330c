"""The admin API: virtual keys and usage, for the holder of ``CALLM_MASTER_KEY``.

::

    POST   /admin/keys          make a key (the key itself is in this answer only)
    GET    /admin/keys          list: id, name, prefix, limits, spend — never a key
    GET    /admin/keys/{id}     one key with its spend and usage
    PATCH  /admin/keys/{id}     change name or limits (in effect for the next request)
    DELETE /admin/keys/{id}     revoke at once
    GET    /admin/usage         calls, tokens and cost by day, key and model
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .._core.errors import InvalidRequestError
from ._http import Incoming, Reply, json_reply
from ._keys import new_key, new_key_id, same_secret, shown_prefix
from ._ledger import KeyLimits, VirtualKey, limits_to_json
from ._validate import key_limit_fields, key_name

if TYPE_CHECKING:
    from ._gateway import Gateway


def _error(status: int, message: str, kind: str) -> Reply:
    return json_reply(status, {"error": {"message": message, "type": kind}})


async def admin_request(gateway: Gateway, request: Incoming) -> Reply:
    """Serve one admin request (the master key is checked first)."""
    refused = _check_master(gateway, request)
    if refused is not None:
        return refused
    if request.too_large:
        return _error(413, "the body is larger than this gateway's limit", "invalid_request_error")
    try:
        return await _route(gateway, request)
    except InvalidRequestError as exc:
        return _error(400, str(exc), "invalid_request_error")


def _check_master(gateway: Gateway, request: Incoming) -> Reply | None:
    master = gateway.settings.master_key
    if not master:
        return _error(
            401,
            "the admin API is off: start the gateway with CALLM_MASTER_KEY set",
            "authentication_error",
        )
    auth = request.headers.get("authorization", "")
    scheme, _, given = auth.partition(" ")
    if scheme.lower() != "bearer" or not same_secret(given.strip(), master):
        return _error(401, "send the master key as Authorization: Bearer …", "authentication_error")
    return None


async def _route(gateway: Gateway, request: Incoming) -> Reply:
    method, path = request.method, request.path.rstrip("/")
    if path == "/admin/keys":
        if method == "POST":
            return await _create(gateway, _body(request))
        if method == "GET":
            return await _list(gateway)
    elif path.startswith("/admin/keys/"):
        key_id = path[len("/admin/keys/") :]
        if method == "GET":
            return await _show(gateway, key_id)
        if method == "PATCH":
            return await _update(gateway, key_id, _body(request))
        if method == "DELETE":
            return await _revoke(gateway, key_id)
    elif path == "/admin/usage" and method == "GET":
        return await _usage(gateway, request)
    return _error(404, f"no admin endpoint {method} {request.path}", "not_found_error")


def _body(request: Incoming) -> dict[str, object]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise InvalidRequestError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return body


async def _create(gateway: Gateway, body: dict[str, Any]) -> Reply:
    limits = replace(KeyLimits(), **key_limit_fields(body))
    plain = new_key()
    key = VirtualKey(new_key_id(), key_name(body), shown_prefix(plain), time.time(), limits)
    await gateway.ledger.create_key(gateway.hasher.hash(plain), key)
    shown = await _shown(gateway, key)
    shown["key"] = plain  # the only time the key is ever shown
    return json_reply(201, shown)


async def _list(gateway: Gateway) -> Reply:
    keys = await gateway.ledger.list_keys()
    return json_reply(200, {"data": [await _shown(gateway, k) for k in keys]})


async def _show(gateway: Gateway, key_id: str) -> Reply:
    key = await gateway.ledger.get_key(key_id)
    if key is None:
        return _no_key(key_id)
    return json_reply(200, await _shown(gateway, key))


async def _update(gateway: Gateway, key_id: str, body: dict[str, Any]) -> Reply:
    key = await gateway.ledger.get_key(key_id)
    if key is None:
        return _no_key(key_id)
    limits = replace(key.limits, **key_limit_fields(body))
    changed = await gateway.ledger.update_key(key_id, limits, key_name(body, key.name))
    if changed is None:
        return _no_key(key_id)
    return json_reply(200, await _shown(gateway, changed))


async def _revoke(gateway: Gateway, key_id: str) -> Reply:
    if not await gateway.ledger.revoke_key(key_id):
        return _no_key(key_id)
    return json_reply(200, {"id": key_id, "revoked": True})


async def _usage(gateway: Gateway, request: Incoming) -> Reply:
    since = request.query.get("since")
    rows = await gateway.ledger.usage(since)
    data = [
        {
            "day": r.day,
            "key_id": r.key_id,
            "model": r.model,
            "calls": r.calls,
            "errors": r.errors,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cost_usd": str(r.cost_usd),
            "unpriced_calls": r.unpriced_calls,
        }
        for r in rows
    ]
    return json_reply(200, {"data": data})


def _no_key(key_id: str) -> Reply:
    return _error(404, f"no live key with id {key_id!r}", "not_found_error")


async def _shown(gateway: Gateway, key: VirtualKey) -> dict[str, object]:
    usage = await gateway.ledger.key_usage(key.id)
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        **limits_to_json(key.limits),
        "spend_usd": str(usage.spent_usd),
        "period_start": usage.period_start,
        "in_flight": usage.in_flight,
        "calls": usage.calls,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
    }
