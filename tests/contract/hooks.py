"""Schemathesis hooks of the contract test (loaded by tests/contract/schemathesis.toml).

Three kinds of generated requests are not sent. First, bodies that are not UTF-8. Behind API Gateway such a body
reaches the function (base64-encoded) and is answered 400 (shared::http::json_body); but the
local stack's router, cargo-lambda's, converts text and JSON bodies to a string before the
function runs and answers its own 500 to these (README, "make dev"). Sending them would test
cargo-lambda, not this project. Every other malformed body (bytes that are UTF-8 but not JSON,
wrong types, missing fields) is still sent. Second, header values with bytes outside ASCII
(obs-text, sent as Latin-1): API Gateway hands a function its headers as strings of a JSON
event, so a function never sees such bytes; cargo-lambda's router fails to serialize them into
its event and answers its own 500 (`{"type":"https://httpstatuses.com/500",...}`) before any
function runs, which is what an earlier run saw on `GET /v1/forms` (a generated `Authorization`
value). Reproduced by hand: `printf 'GET /v1/forms HTTP/1.1\r\nX-A: \x80\r\n\r\n' | nc`.
Third, submissions with a filled honeypot (below).
"""

import schemathesis


# `filter_case` rather than `filter_body`: the coverage phase builds its cases without the body
# hooks, and these rules hold for every phase.


def _text_body_is_not_utf8(body):
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return True
    return False


def _header_has_non_ascii(headers):
    for value in (headers or {}).values():
        if isinstance(value, (bytes, bytearray)):
            if any(b >= 0x80 for b in value):
                return True
        elif any(ord(c) >= 0x80 for c in str(value)):
            return True
    return False


@schemathesis.hook
def filter_case(ctx, case):
    return not (_text_body_is_not_utf8(case.body) or _header_has_non_ascii(case.headers))


@schemathesis.hook("filter_case").apply_to(operation_id="submitForm")
def submission_without_honeypot(ctx, case):
    # A filled honeypot (`_gotcha`) is answered like success whatever else the body holds, so a
    # bot learns nothing (docs/openapi.yaml, Submission). A generated body that fills it is
    # therefore not a test of the other fields' validation; it is not sent.
    body = case.body
    return not (isinstance(body, dict) and body.get("_gotcha") not in (None, ""))
