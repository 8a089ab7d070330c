"""callm's SigV4 signer against AWS's published Signature Version 4 test suite.

The vectors are the suite's ``header-signed-request.txt`` results (awslabs/aws-c-auth,
tests/aws-signing-test-suite/v4): the example key pair, region ``us-east-1``, service
``service``, 2015-08-30T12:36:00Z, and the signature AWS publishes for each request.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from callm._core.http import HttpRequest
from callm._core.sigv4 import AwsCredentials, canonical_request, host_of, sign

KEY = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
WHEN = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
HOST = "https://example.amazonaws.com"
STS_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPf"
    "IeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT"
    "7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKml"
    "zm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)
UNRESERVED = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
FORM_HASH = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"

# (suite case, method, path and query, headers, body, credentials, signed headers, signature)
VECTORS = [
    ("get-vanilla", "GET", "/", {}, None, KEY, "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("post-vanilla", "POST", "/", {}, None, KEY, "host;x-amz-date",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ("get-utf8", "GET", "/\u1234", {}, None, KEY, "host;x-amz-date",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ("get-space-unnormalized", "GET", "/example space/", {}, None, KEY, "host;x-amz-date",
     "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"),
    ("get-vanilla-utf8-query", "GET", "/?\u1234=bar", {}, None, KEY, "host;x-amz-date",
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
    ("get-vanilla-query-order-encoded", "GET", "/?Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
     {}, None, KEY, "host;x-amz-date",
     "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"),
    ("get-vanilla-empty-query-key", "GET", "/?Param1=value1", {}, None, KEY, "host;x-amz-date",
     "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"),
    ("get-vanilla-query-unreserved", "GET", f"/?{UNRESERVED}={UNRESERVED}", {}, None, KEY,
     "host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
    ("get-header-value-trim", "GET", "/", {"My-Header1": " value1", "My-Header2": ' "a   b   c"'},
     None, KEY, "host;my-header1;my-header2;x-amz-date",
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
    ("post-header-key-sort", "POST", "/", {"My-Header1": "value1"}, None, KEY,
     "host;my-header1;x-amz-date",
     "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
    ("get-vanilla-with-session-token", "GET", "/", {}, None,
     AwsCredentials(KEY.access_key_id, KEY.secret_access_key,
                    "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
     "host;x-amz-date;x-amz-security-token",
     "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"),
    ("post-sts-header-before", "POST", "/", {}, None,
     AwsCredentials(KEY.access_key_id, KEY.secret_access_key, STS_TOKEN),
     "host;x-amz-date;x-amz-security-token",
     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
    ("post-x-www-form-urlencoded", "POST", "/",
     {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "13",
      "x-amz-content-sha256": FORM_HASH}, b"Param1=value1", KEY,
     "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
     "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"),
]  # fmt: skip


@pytest.mark.parametrize("vector", VECTORS, ids=[v[0] for v in VECTORS])
def test_the_signature_is_the_one_aws_publishes(vector: tuple[Any, ...]) -> None:
    _, method, target, headers, body, credentials, signed, signature = vector
    request = HttpRequest(method, HOST + target, headers, body)
    out = sign(request, credentials, region="us-east-1", service="service", now=WHEN)
    assert out.headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    assert out.headers["x-amz-date"] == "20150830T123600Z"
    if credentials.session_token:
        assert out.headers["x-amz-security-token"] == credentials.session_token


def test_the_canonical_request_of_get_vanilla() -> None:
    headers = {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}
    empty = hashlib.sha256(b"").hexdigest()
    signed, text = canonical_request("GET", HOST + "/", headers, empty)
    assert signed == "host;x-amz-date"
    assert text == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        f"host;x-amz-date\n{empty}"
    )


def test_a_bedrock_model_id_is_signed_as_sent_and_encoded_once_more() -> None:
    # Bedrock's model ids carry ":" and inference-profile ARNs "/" (sent as %2F): every
    # service but S3 signs the path as sent, percent-encoded again.
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/arn:aws:x%2Fy:0/converse"
    _, text = canonical_request("POST", url, {"host": host_of(url)}, "x")
    assert text.split("\n")[1] == "/model/arn%3Aaws%3Ax%252Fy%3A0/converse"


def test_secrets_become_secret_headers_and_never_show_in_a_repr() -> None:
    secret, token = "s3cr3t/" + "x" * 30, "tok" + "y" * 40
    credentials = AwsCredentials("AKIDSHOWN", secret, token)
    request = HttpRequest("POST", HOST + "/model/m/converse", {"content-type": "x"}, b"{}")
    signed = sign(request, credentials, region="eu-west-1", service="bedrock", now=WHEN)
    assert {"authorization", "x-amz-security-token"} <= signed.secret_headers
    assert "host" not in signed.headers  # the transport writes it from the URL
    for text in (repr(credentials), repr(signed)):
        assert secret not in text and token not in text


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://example.amazonaws.com/", "example.amazonaws.com"),
        ("https://example.amazonaws.com:443/", "example.amazonaws.com"),
        ("http://127.0.0.1:8080/x", "127.0.0.1:8080"),
        ("http://[::1]:9000/", "[::1]:9000"),
    ],
)
def test_the_signed_host_is_the_one_a_client_sends(url: str, host: str) -> None:
    assert host_of(url) == host
