"""The caller's own hooks around each call: before it is sent, after a reply, on an error."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .base import Attempt, CallInfo, Policy

if TYPE_CHECKING:
    from .._core.types import Request, Response

BeforeHook = Callable[[CallInfo], "Request | None"]
AfterHook = Callable[[CallInfo, "Response"], None]
ErrorHook = Callable[[CallInfo, BaseException], None]


class HooksPolicy(Policy):
    """``before_request`` may return a changed Request, or raise (``RequestVetoed``) to refuse
    the call; ``after_response`` and ``on_error`` hear how it went."""

    def __init__(
        self,
        before_request: Sequence[BeforeHook] = (),
        after_response: Sequence[AfterHook] = (),
        on_error: Sequence[ErrorHook] = (),
    ) -> None:
        self.before_request = tuple(before_request)
        self.after_response = tuple(after_response)
        self.on_error = tuple(on_error)

    def __repr__(self) -> str:
        counts = (len(self.before_request), len(self.after_response), len(self.on_error))
        return "HooksPolicy(before_request={}, after_response={}, on_error={})".format(*counts)

    def admit(self, attempt: Attempt) -> None:
        info = attempt.info
        for hook in self.before_request:
            changed = hook(info)
            if changed is not None:
                info = replace(info, request=changed)
        attempt.info = info

    def succeeded(
        self, attempt: Attempt, response: Response, headers: Mapping[str, str]
    ) -> Response:
        for hook in self.after_response:
            hook(attempt.info, response)
        return response

    def failed(self, attempt: Attempt, error: BaseException) -> None:
        for hook in self.on_error:
            hook(attempt.info, error)
