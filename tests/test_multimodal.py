"""Images and documents from a path, a URL or bytes, and what each protocol receives.

Files are real: tiny PNG/JPEG/GIF/WebP/PDF files written to the test's directory. The wire
checks run on the built-in provider of each protocol, streamed or not, sync and async.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

import callm
import drive
from callm.testing import FakeOpenAIServer
from protocol_drive import MODELS, ask, point_builtins, sent

STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
MODES = pytest.mark.parametrize("mode", drive.MODES)
PROTOCOLS = pytest.mark.parametrize("protocol", list(MODELS))

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
CAT_URL = "https://example.com/images/cat.png"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name, data in {
        "cat.png": PNG,
        "dog.jpg": JPEG,
        "spin.gif": GIF,
        "leaf.webp": WEBP,
        "report.pdf": PDF,
        "notes.txt": "Meeting at nine. Café.\n".encode(),
        "mislabelled.png": JPEG,  # the bytes win over the suffix
        "nomagic.jpg": b"not really a jpeg, but named like one",
        "picture.bmp": b"BM\x1e\x00\x00\x00\x00\x00\x00\x00\x1a\x00",
        "blob.bin": bytes(range(256)),
    }.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


@pytest.fixture
def server(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    """Every built-in provider of the four protocols, pointed at the one fake."""
    return point_builtins(fake_openai, monkeypatch)


# --- building parts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "media_type", "data"),
    [
        ("cat.png", "image/png", PNG),
        ("dog.jpg", "image/jpeg", JPEG),
        ("spin.gif", "image/gif", GIF),
        ("leaf.webp", "image/webp", WEBP),
        ("mislabelled.png", "image/jpeg", JPEG),
        ("nomagic.jpg", "image/jpeg", b"not really a jpeg, but named like one"),
    ],
)
def test_image_from_path_reads_the_type(
    files: Path, name: str, media_type: str, data: bytes
) -> None:
    image = callm.Image.from_path(files / name, detail="low")
    assert image.url == f"data:{media_type};base64,{b64(data)}"
    assert image.detail == "low"
    assert callm.Image.from_path(str(files / name)).url == image.url  # a str path works too


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("missing.png", "no such file"),
        ("picture.bmp", "image/bmp, not an image type"),
        ("report.pdf", "application/pdf, not an image type"),
        ("blob.bin", "cannot tell what kind of file"),
    ],
)
def test_image_from_path_errors(files: Path, name: str, match: str) -> None:
    with pytest.raises(callm.InvalidRequestError, match=match):
        callm.Image.from_path(files / name)


def test_a_directory_is_not_a_file(files: Path) -> None:
    with pytest.raises(callm.InvalidRequestError, match="directory"):
        callm.Document.from_path(files)


def test_image_from_bytes_sniffs_or_trusts_the_caller() -> None:
    assert callm.Image.from_bytes(GIF).url.startswith("data:image/gif;base64,")
    assert callm.Image.from_bytes(WEBP).url.startswith("data:image/webp;base64,")
    assert (
        callm.Image.from_bytes(b"raw", "image/heic").url == f"data:image/heic;base64,{b64(b'raw')}"
    )
    with pytest.raises(callm.InvalidRequestError, match="pass media_type"):
        callm.Image.from_bytes(b"what is this")
    with pytest.raises(callm.InvalidRequestError, match="not an image type"):
        callm.Image.from_bytes(PDF, "application/pdf")


def test_image_from_url_keeps_the_url() -> None:
    assert callm.Image.from_url(CAT_URL, detail="high") == callm.Image(CAT_URL, "high")
    assert callm.Image.from_url("gs://bucket/cat.png").url == "gs://bucket/cat.png"
    with pytest.raises(callm.InvalidRequestError, match=r"Image\.from_path"):
        callm.Image.from_url("cat.png")


def test_document_from_path(files: Path) -> None:
    pdf = callm.Document.from_path(files / "report.pdf")
    assert pdf == callm.Document(
        f"data:application/pdf;base64,{b64(PDF)}", "application/pdf", "report.pdf"
    )
    notes = callm.Document.from_path(files / "notes.txt", title="Notes")
    assert (notes.media_type, notes.title) == ("text/plain", "Notes")
    with pytest.raises(callm.InvalidRequestError, match="no such file"):
        callm.Document.from_path(files / "missing.pdf")
    with pytest.raises(callm.InvalidRequestError, match="cannot tell"):
        callm.Document.from_path(files / "blob.bin")


def test_document_from_bytes_and_url() -> None:
    assert callm.Document.from_bytes(PDF).media_type == "application/pdf"
    assert callm.Document.from_bytes(b"plain words").media_type == "text/plain"
    with pytest.raises(callm.InvalidRequestError, match="pass media_type"):
        callm.Document.from_bytes(bytes(range(256)))
    doc = callm.Document.from_url("https://example.com/a/paper.pdf?download=1")
    assert (doc.url, doc.media_type) == ("https://example.com/a/paper.pdf?download=1", PDF_TYPE)
    assert callm.Document.from_url("https://example.com/x", "text/csv").media_type == "text/csv"
    with pytest.raises(callm.InvalidRequestError, match=r"Document\.from_path"):
        callm.Document.from_url("/tmp/paper.pdf")


PDF_TYPE = "application/pdf"


def test_a_path_in_a_message_becomes_the_right_part(files: Path) -> None:
    message = callm.Message.user("Compare", files / "cat.png", files / "report.pdf")
    text, image, document = message.content
    assert text == callm.Text("Compare")
    assert image == callm.Image.from_path(files / "cat.png")
    assert document == callm.Document.from_path(files / "report.pdf")
    # A plain string is text, never a file name, even when such a file exists.
    assert callm.Message.user(str(files / "cat.png")).content == (
        callm.Text(str(files / "cat.png")),
    )


@MODES
async def test_dict_messages_take_paths_and_file_parts(
    server: FakeOpenAIServer, files: Path, mode: str
) -> None:
    pdf_url = f"data:application/pdf;base64,{b64(PDF)}"
    content: list[Any] = [
        "Look",
        files / "dog.jpg",
        {"type": "image", "path": str(files / "cat.png"), "detail": "low"},
        {"type": "image", "url": CAT_URL},
        {"type": "image", "data": GIF},
        {"type": "file", "path": files / "notes.txt"},
        {"type": "file", "url": "https://example.com/paper.pdf"},
        {"type": "file", "file": {"file_data": pdf_url, "filename": "r.pdf"}},
        {"type": "input_image", "image_url": CAT_URL, "detail": "high"},
        {"type": "input_file", "file_url": "https://example.com/paper.pdf"},
    ]
    same = callm.Message.user(
        "Look",
        callm.Image.from_path(files / "dog.jpg"),
        callm.Image.from_path(files / "cat.png", "low"),
        callm.Image.from_url(CAT_URL),
        callm.Image.from_bytes(GIF),
        callm.Document.from_path(files / "notes.txt"),
        callm.Document.from_url("https://example.com/paper.pdf"),
        callm.Document.from_bytes(PDF, title="r.pdf"),
        callm.Image.from_url(CAT_URL, "high"),
        callm.Document.from_url("https://example.com/paper.pdf"),
    )
    model = MODELS["openai_responses"]
    r = await ask(mode, False, model, [{"role": "user", "content": content}])
    assert "9 non-text" in r.text
    from_dicts = sent(server)
    await ask(mode, False, model, [same])
    assert from_dicts == sent(server)
    assert [p["type"] for p in user_content("openai_responses", from_dicts)] == [
        "input_text",
        *["input_image"] * 4,
        *["input_file"] * 3,
        "input_image",
        "input_file",
    ]


def test_bad_dict_parts_are_refused_without_echoing_payloads(server: FakeOpenAIServer) -> None:
    file_id = [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f1"}}]}]
    big = "A" * 5000
    blob = [{"role": "user", "content": [{"type": "image", "blob": big}]}]
    with callm.Client() as client:
        with pytest.raises(callm.InvalidRequestError, match="uploaded file ids") as info:
            client.complete(MODELS["openai_chat"], file_id)
        assert "f1" in str(info.value)
        with pytest.raises(callm.InvalidRequestError, match="image part needs") as info:
            client.complete(MODELS["openai_chat"], blob)
        assert big not in str(info.value)
    assert server.requests == []


def test_reprs_hide_inline_payloads(files: Path) -> None:
    image = callm.Image.from_path(files / "cat.png")
    document = callm.Document.from_path(files / "report.pdf")
    message = callm.Message.user("x", image, document)
    for shown in (repr(image), repr(document), repr(message)):
        assert b64(PNG)[10:40] not in shown and b64(PDF)[10:40] not in shown


# --- what each protocol receives ---------------------------------------------------------


def user_content(protocol: str, body: dict[str, Any]) -> list[Any]:
    """The parts of the (only) user message of a request body, in the protocol's shape."""
    if protocol == "openai_chat":
        return list(body["messages"][-1]["content"])
    if protocol == "openai_responses":
        return list(body["input"][-1]["content"])
    if protocol == "anthropic":
        return list(body["messages"][-1]["content"])
    return list(body["contents"][-1]["parts"])


def expected(protocol: str) -> list[Any]:
    """The wire parts of: text, PNG from a path, an image URL, JPEG bytes, a PDF from a path."""
    png, jpeg, pdf = b64(PNG), b64(JPEG), b64(PDF)
    if protocol == "openai_chat":
        return [
            {"type": "text", "text": "Describe these"},
            {
                "type": "image_url",
                "image_url": {"url": f"data:image/png;base64,{png}", "detail": "low"},
            },
            {"type": "image_url", "image_url": {"url": CAT_URL}},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{jpeg}"}},
            {
                "type": "file",
                "file": {
                    "file_data": f"data:application/pdf;base64,{pdf}",
                    "filename": "report.pdf",
                },
            },
        ]
    if protocol == "openai_responses":
        return [
            {"type": "input_text", "text": "Describe these"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{png}", "detail": "low"},
            {"type": "input_image", "image_url": CAT_URL, "detail": "auto"},
            {
                "type": "input_image",
                "image_url": f"data:image/jpeg;base64,{jpeg}",
                "detail": "auto",
            },
            {
                "type": "input_file",
                "file_data": f"data:application/pdf;base64,{pdf}",
                "filename": "report.pdf",
            },
        ]
    if protocol == "anthropic":
        return [
            {"type": "text", "text": "Describe these"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
            {"type": "image", "source": {"type": "url", "url": CAT_URL}},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/jpeg", "data": jpeg},
            },
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
                "title": "report.pdf",
            },
        ]
    return [
        {"text": "Describe these"},
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"fileData": {"fileUri": CAT_URL, "mimeType": "image/png"}},
        {"inlineData": {"mimeType": "image/jpeg", "data": jpeg}},
        {"inlineData": {"mimeType": "application/pdf", "data": pdf}},
    ]


@PROTOCOLS
@STREAMED
@MODES
async def test_each_protocol_receives_its_own_parts(
    server: FakeOpenAIServer, files: Path, mode: str, streamed: bool, protocol: str
) -> None:
    message = callm.Message.user(
        "Describe these",
        callm.Image.from_path(files / "cat.png", detail="low"),
        callm.Image.from_url(CAT_URL),
        callm.Image.from_bytes(JPEG),
        files / "report.pdf",
    )
    r = await ask(mode, streamed, MODELS[protocol], [message])
    assert r.text.startswith('[offline] You said: "Describe these"')
    assert user_content(protocol, sent(server)) == expected(protocol)


@PROTOCOLS
@STREAMED
@MODES
async def test_a_text_document(
    server: FakeOpenAIServer, files: Path, mode: str, streamed: bool, protocol: str
) -> None:
    await ask(
        mode, streamed, MODELS[protocol], [callm.Message.user("Summarise", files / "notes.txt")]
    )
    part = user_content(protocol, sent(server))[1]
    text = "Meeting at nine. Café.\n"
    assert (
        part
        == {
            # Chat Completions takes PDFs only as files: OpenAI's advice is to send the text.
            "openai_chat": {"type": "text", "text": text},
            "openai_responses": {
                "type": "input_file",
                "file_data": f"data:text/plain;base64,{b64(text.encode())}",
                "filename": "notes.txt",
            },
            "anthropic": {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": text},
                "title": "notes.txt",
            },
            "gemini": {"inlineData": {"mimeType": "text/plain", "data": b64(text.encode())}},
        }[protocol]
    )


@PROTOCOLS
@MODES
async def test_a_pdf_by_url(server: FakeOpenAIServer, mode: str, protocol: str) -> None:
    url = "https://example.com/papers/attention.pdf"
    message = callm.Message.user("Summarise", callm.Document.from_url(url))
    if protocol == "openai_chat":
        with pytest.raises(callm.InvalidRequestError, match="not by URL"):
            await ask(mode, False, MODELS[protocol], [message])
        assert server.requests == []
        return
    await ask(mode, False, MODELS[protocol], [message])
    part = user_content(protocol, sent(server))[1]
    assert (
        part
        == {
            "openai_responses": {"type": "input_file", "file_url": url},
            "anthropic": {"type": "document", "source": {"type": "url", "url": url}},
            "gemini": {"fileData": {"fileUri": url, "mimeType": "application/pdf"}},
        }[protocol]
    )


@MODES
async def test_gemini_needs_a_type_for_web_urls(server: FakeOpenAIServer, mode: str) -> None:
    untyped = callm.Image.from_url("https://example.com/render?id=7")
    with pytest.raises(callm.InvalidRequestError, match="Gemini needs the media type"):
        await ask(mode, False, MODELS["gemini"], [callm.Message.user("What?", untyped)])
    assert server.requests == []
    typed = callm.Document.from_url("https://example.com/render?id=7", media_type="image/png")
    uploaded = callm.Document.from_url(
        "https://generativelanguage.googleapis.com/v1beta/files/abc123"
    )
    await ask(mode, False, MODELS["gemini"], [callm.Message.user("What?", typed, uploaded)])
    assert user_content("gemini", sent(server))[1:] == [
        {"fileData": {"fileUri": "https://example.com/render?id=7", "mimeType": "image/png"}},
        {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc123"}},
    ]


@pytest.mark.parametrize("protocol", ["openai_chat", "anthropic"])
async def test_unsupported_document_types_are_refused(
    server: FakeOpenAIServer, protocol: str
) -> None:
    sheet = callm.Document.from_bytes(b"PK\x03\x04", "application/vnd.ms-excel")
    with callm.Client() as client, pytest.raises(callm.InvalidRequestError, match="PDF and"):
        client.complete(MODELS[protocol], [callm.Message.user("Read", sheet)])
    assert server.requests == []
