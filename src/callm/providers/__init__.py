"""Old name of :mod:`callm.protocols`, kept importable for one release, then removed.

``callm.providers.openai_chat`` and the other old module names still import, as aliases of
the modules that replaced them (``callm.protocols.openai_chat.client`` …), with a
DeprecationWarning. New code imports from :mod:`callm.protocols`.
"""

from __future__ import annotations

import sys
import warnings
from types import ModuleType

from ..protocols import PROTOCOL_MODULES, StreamDecoder, WireProtocol, protocol_for
from ..protocols._shared import errors as _errors
from ..protocols._shared import openai as _openai_common
from ..protocols.anthropic import client as anthropic
from ..protocols.anthropic import schema as _anthropic_schema
from ..protocols.anthropic import stream as _anthropic_stream
from ..protocols.gemini import client as gemini
from ..protocols.gemini import errors as _gemini_errors
from ..protocols.gemini import schema as _gemini_schema
from ..protocols.gemini import stream as _gemini_stream
from ..protocols.openai_chat import client as openai_chat
from ..protocols.openai_chat import stream as _openai_chat_stream
from ..protocols.openai_responses import client as _responses_client
from ..protocols.openai_responses import stream as _responses_stream

warnings.warn(
    "callm.providers is now callm.protocols (callm.providers.<name> is "
    "callm.protocols.<name>.client); the old name goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)

# The old openai_responses module held its stream decoder too. The client module cannot
# (the stream module imports it), so the old name is the client's names plus that one.
openai_responses = ModuleType(f"{__name__}.openai_responses", _responses_client.__doc__)
openai_responses.__dict__.update(
    {k: v for k, v in vars(_responses_client).items() if not k.startswith("__")},
    stream_decoder=_responses_stream.stream_decoder,
)

__all__ = [
    "PROTOCOL_MODULES",
    "StreamDecoder",
    "WireProtocol",
    "anthropic",
    "gemini",
    "openai_chat",
    "openai_responses",
    "protocol_for",
]

# `import callm.providers.<old name>` finds the module that replaced it.
_OLD_NAMES = {
    "_errors": _errors,
    "_openai_common": _openai_common,
    "anthropic": anthropic,
    "_anthropic_schema": _anthropic_schema,
    "_anthropic_stream": _anthropic_stream,
    "gemini": gemini,
    "_gemini_errors": _gemini_errors,
    "_gemini_schema": _gemini_schema,
    "_gemini_stream": _gemini_stream,
    "openai_chat": openai_chat,
    "_openai_chat_stream": _openai_chat_stream,
    "openai_responses": openai_responses,
    "_responses_stream": _responses_stream,
}
for _old, _module in _OLD_NAMES.items():
    sys.modules[f"{__name__}.{_old}"] = _module
