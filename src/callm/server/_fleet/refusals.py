"""What a caller is told when the counters refuse a call: the in-process ledger's words."""

from __future__ import annotations

from decimal import Decimal

from .._ledger import KeyLimits, Refused
from .counters import Decision, from_units


def refusal(decision: Decision, limits: KeyLimits, cost: Decimal, tokens: int) -> Refused:
    """The Refused error for a decision that did not admit the call."""
    reason, retry = decision.reason, decision.retry_after
    if reason == "revoked":
        return Refused("this key was revoked", code="invalid_api_key", status=401)
    if reason == "parallel":
        return Refused(
            f"this key may have {limits.max_parallel} request(s) in flight; wait for one to finish",
            code="parallel_limit_exceeded",
            retry_after=1.0,
        )
    if reason == "rpm":
        return Refused(
            f"this key may make {limits.rpm} request(s) a minute",
            code="rpm_limit_exceeded",
            retry_after=retry,
        )
    if reason == "tpm_never":
        return Refused(
            f"this request may use {tokens} tokens (prompt and max_tokens), more than the "
            f"key's {limits.tpm} a minute: lower max_tokens or shorten the prompt",
            code="tpm_limit_exceeded",
        )
    if reason == "tpm":
        return Refused(
            f"this key may use {limits.tpm} tokens a minute",
            code="tpm_limit_exceeded",
            retry_after=retry,
        )
    spent, held = from_units(decision.spent), from_units(decision.reserved)
    return Refused(
        f"this key's budget of ${limits.budget_usd} is spent (${spent.normalize():f} used, "
        f"${held.normalize():f} held by calls in flight, this call may cost up to ${cost:.6f})",
        code="budget_exceeded",
        retry_after=retry,
    )
