import base64
import json
import string
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.core.webhooks.signing import headers, new_secret, sign

# The test vector published with the Standard Webhooks reference implementations.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = b'{"type":"alert.opened","data":{"alert_id":"a1"}}'


def now() -> int:
    return int(time.time())


def test_new_secret_is_prefixed_base64_of_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


def test_reproduces_the_published_test_vector() -> None:
    assert sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY, [VECTOR_SECRET]) == VECTOR_SIGNATURE


def test_a_secret_without_base64_padding_signs_like_the_padded_one() -> None:
    secret = new_secret()
    assert secret.endswith("=")  # 32 bytes take one pad character
    unpadded = secret.rstrip("=")
    assert sign("msg_1", 1, BODY, [unpadded]) == sign("msg_1", 1, BODY, [secret])


def test_headers_verify_with_one_secret() -> None:
    secret = new_secret()
    timestamp = now()
    sent = headers("msg_1", timestamp, BODY, [secret])
    assert sent["webhook-id"] == "msg_1"
    assert sent["webhook-timestamp"] == str(timestamp)
    assert sent["content-type"] == "application/json"
    assert Webhook(secret).verify(BODY, sent) == {
        "type": "alert.opened",
        "data": {"alert_id": "a1"},
    }


def test_during_rotation_either_secret_verifies() -> None:
    old, new = new_secret(), new_secret()
    sent = headers("msg_2", now(), BODY, [old, new])
    entries = sent["webhook-signature"].split(" ")
    assert len(entries) == 2
    assert all(entry.startswith("v1,") for entry in entries)
    assert entries[0] == sign("msg_2", int(sent["webhook-timestamp"]), BODY, [old])
    assert entries[1] == sign("msg_2", int(sent["webhook-timestamp"]), BODY, [new])
    Webhook(old).verify(BODY, sent)
    Webhook(new).verify(BODY, sent)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, sent)


def test_a_tampered_body_fails() -> None:
    secret = new_secret()
    sent = headers("msg_3", now(), BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"a1", b"a2"), sent)


def test_a_tampered_timestamp_or_id_fails() -> None:
    secret = new_secret()
    timestamp = now()
    sent = headers("msg_4", timestamp, BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**sent, "webhook-timestamp": str(timestamp - 1)})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**sent, "webhook-id": "msg_5"})


def test_a_chinese_body_is_signed_as_utf8_bytes() -> None:
    secret = new_secret()
    payload = {"customer": {"name": "张伟", "tags": ["重要客户", "华东区"]}}
    body = json.dumps(payload, ensure_ascii=False).encode()
    assert "张伟".encode() in body
    sent = headers("msg_6", now(), body, [secret])
    assert Webhook(secret).verify(body, sent) == payload


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_",  # empty key
        "whsec_not base64!",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwA",  # 4n + 1 characters: not base64
        "",
    ],
)
def test_a_malformed_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        sign("msg_7", 1, BODY, [new_secret(), secret])


def test_signing_needs_a_secret_and_an_id() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign("msg_8", 1, BODY, [])
    with pytest.raises(ValueError, match="id"):
        sign("", 1, BODY, [new_secret()])


@given(
    msg_id=st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=40),
    text=st.text(max_size=200),
    secret_count=st.integers(min_value=1, max_value=3),
)
def test_any_utf8_body_verifies_with_each_secret(msg_id: str, text: str, secret_count: int) -> None:
    secrets = [new_secret() for _ in range(secret_count)]
    body = text.encode()
    sent = headers(msg_id, now(), body, secrets)
    for secret in secrets:
        Webhook(secret).verify(body, sent, json_parse=False)
