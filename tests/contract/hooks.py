"""Schemathesis hooks of the contract test (loaded by tests/contract/schemathesis.toml).

Two generated requests are not sent. First, bodies that are not UTF-8. Behind API Gateway such a body
reaches the function (base64-encoded) and is answered 400 (shared::http::json_body); but the
local stack's router, cargo-lambda's, converts text and JSON bodies to a string before the
function runs and answers its own 500 to these (README, "make dev"). Sending them would test
cargo-lambda, not this project. Every other malformed body (bytes that are UTF-8 but not JSON,
wrong types, missing fields) is still sent. Second, submissions with a filled honeypot (below).
"""

import schemathesis


@schemathesis.hook
def filter_body(ctx, body):
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


@schemathesis.hook("filter_body").apply_to(operation_id="submitForm")
def submission_without_honeypot(ctx, body):
    # A filled honeypot (`_gotcha`) is answered like success whatever else the body holds, so a
    # bot learns nothing (docs/openapi.yaml, Submission). A generated body that fills it is
    # therefore not a test of the other fields' validation; it is not sent.
    return not (isinstance(body, dict) and body.get("_gotcha") not in (None, ""))
