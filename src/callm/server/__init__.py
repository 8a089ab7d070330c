"""The gateway, ``callm serve``: one endpoint for every model, in each caller's own protocol.

Callers reach any configured model through the OpenAI, Anthropic or Gemini wire formats
with a virtual key made by the admin API; the gateway holds the provider keys, calls
upstream through the library's own AsyncClient, and enforces each key's models, budget,
rpm, tpm and parallelism exactly (see ``_ledger.py``). Importing ``callm`` never loads
this package; its server dependencies come with ``pip install 'callm[server]'``.
"""

from __future__ import annotations

from ._gateway import Gateway
from ._serve import serve
from ._settings import GatewaySettings, load_settings

__all__ = ["Gateway", "GatewaySettings", "load_settings", "serve"]
