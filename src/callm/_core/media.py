"""Reading attachments: the media type of bytes or a file, and a file's contents.

The media type comes from the bytes first (their magic numbers cannot lie about the
format), then from the file name's suffix, so ``photo.png`` holding a JPEG is sent as the
JPEG it is. Every failure is an :class:`~callm.InvalidRequestError` that says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from .request_errors import InvalidRequestError

# The image formats providers take: OpenAI and Anthropic take the first four, Gemini all.
IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/heic", "image/heif"}
)
PDF = "application/pdf"

# (offset, signature, media type): the formats callm recognises from their first bytes.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),  # after "RIFF" and the chunk size
    (0, b"%PDF-", PDF),
)
_TEXT_APPLICATION_TYPES = frozenset(
    {"application/json", "application/jsonl", "application/xml", "application/x-yaml"}
)
# Suffixes mimetypes does not know everywhere (its tables depend on the platform).
_SUFFIXES = {".md": "text/markdown", ".webp": "image/webp", ".jsonl": "application/jsonl"}


def sniff(data: bytes) -> str | None:
    """The media type the bytes announce by their magic number, or None."""
    for offset, signature, media_type in _MAGIC:
        if data[offset : offset + len(signature)] == signature:
            if media_type == "image/webp" and not data.startswith(b"RIFF"):
                continue
            return media_type
    return None


def guess_from_name(name: str) -> str | None:
    """The media type a file name or URL path suggests by its suffix, or None."""
    import mimetypes
    from urllib.parse import urlsplit

    path = urlsplit(name).path if "://" in name else name
    suffix = os.path.splitext(path)[1].lower()
    guessed = _SUFFIXES.get(suffix) or mimetypes.guess_type(path, strict=False)[0]
    return None if guessed == "application/octet-stream" else guessed  # that means "unknown"


def read_file(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """A file's bytes and its media type (sniffed, else guessed from the suffix)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise InvalidRequestError(f"no such file: {str(file)!r}") from None
    except IsADirectoryError:
        raise InvalidRequestError(f"{str(file)!r} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {str(file)!r}: {exc.strerror}") from None
    media_type = sniff(data) or guess_from_name(file.name) or _text_or_none(data)
    if media_type is None:
        raise InvalidRequestError(
            f"cannot tell what kind of file {str(file)!r} is: give it a known suffix "
            "(.png, .jpg, .pdf, .txt …) or use from_bytes(data, media_type=...)"
        )
    return data, media_type


def image_type(data: bytes, given: str | None, where: str) -> str:
    """The media type of image bytes: ``given``, else sniffed; refused if not an image.

    A type the caller gives is trusted if it is an image type at all (a provider may take
    more than callm knows); one found from the file is held to :data:`IMAGE_TYPES`.
    """
    if given is not None:
        if not given.startswith("image/"):
            raise InvalidRequestError(
                f"media_type {given!r} is not an image type: use callm.Document for it"
            )
        return given
    return supported_image(sniff(data), where)


def supported_image(media_type: str | None, where: str) -> str:
    """``media_type`` if it is an image type providers take, else a clear error."""
    if media_type is None:
        raise InvalidRequestError(
            f"cannot tell the image type of {where} from its bytes: "
            "pass media_type='image/png' (or image/jpeg, image/gif, image/webp)"
        )
    if media_type not in IMAGE_TYPES:
        raise InvalidRequestError(
            f"{where} is {media_type}, not an image type providers take: "
            "use PNG, JPEG, GIF or WebP (or callm.Document for other files)"
        )
    return media_type


def document_type(data: bytes, given: str | None, where: str) -> str:
    """The media type of document bytes: ``given``, else a PDF or UTF-8 text by content."""
    media_type = given or sniff(data) or _text_or_none(data)
    if media_type is None:
        raise InvalidRequestError(
            f"cannot tell the document type of {where} from its bytes: "
            "pass media_type='application/pdf' (or 'text/plain' …)"
        )
    return media_type


def _text_or_none(data: bytes) -> str | None:
    """``text/plain`` for bytes that read as UTF-8 text (no NUL bytes), else None."""
    if b"\0" in data[:8192]:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain"


def is_text(media_type: str) -> bool:
    """Whether a document of this type is plain text a model can read as it is."""
    return media_type.startswith("text/") or media_type in _TEXT_APPLICATION_TYPES


def check_url(url: str, what: str) -> str:
    """A URL given to ``from_url``: it must name a scheme (``https://``, ``gs://`` …)."""
    if not isinstance(url, str) or ("://" not in url and not url.startswith("data:")):
        raise InvalidRequestError(
            f"{what}.from_url needs a URL such as https://…, not {url!r}: "
            f"for a local file use {what}.from_path"
        )
    return url
