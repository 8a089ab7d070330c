"""callm's embedded storage: the SQLite call log, spend per scope and the response cache.

Loaded on first use only (``import callm`` does not import it). ``Store`` is the database;
``CallRecord`` one logged call; everything free-form is redacted (``redact_text``,
``redact_json``) before it is written, so no key and no base64 payload reaches the file.
"""

from __future__ import annotations

from ._db import Store, SummaryKey, UsageRow, iso_time
from ._errors import NOT_SAVED, StoreError, warn_once
from ._migrations import MIGRATIONS, Migration, applied, migrate
from ._record import CallRecord, RecordDetails, message_json, new_id, part_json, request_json
from ._redact import REDACTED, is_secret_name, redact_json, redact_text

__all__ = [
    "MIGRATIONS",
    "NOT_SAVED",
    "REDACTED",
    "CallRecord",
    "Migration",
    "RecordDetails",
    "Store",
    "StoreError",
    "SummaryKey",
    "UsageRow",
    "applied",
    "is_secret_name",
    "iso_time",
    "message_json",
    "migrate",
    "new_id",
    "part_json",
    "redact_json",
    "redact_text",
    "request_json",
    "warn_once",
]
