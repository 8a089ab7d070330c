"""The value types' own helpers."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import callm
from callm._core.types import priced


def test_priced_carries_every_field_of_the_response() -> None:
    values: dict[str, Any] = {}
    for n, f in enumerate(dataclasses.fields(callm.Response)):
        values[f.name] = (callm.Text(str(n)),) if f.name == "content" else f"v{n}"
    original = callm.Response(**values)
    made = priced(original, Decimal("0.5"), ("p/m",))
    assert made == dataclasses.replace(original, cost=Decimal("0.5"), tried=("p/m",))
    assert original.cost == values["cost"]  # the original is left as it was
