"""The state document as data: encoding, validation, secret masking, durations."""

from __future__ import annotations

import pytest
from mactl.state import SENSITIVE_MASK, StageRecord, StateDocument, is_secret_key, parse_duration
from mactl.state.document import decode_document, encode_document, mask_document

from mactl.errors import ConfigError, StateError


def test_round_trip_keeps_every_field() -> None:
    doc = StateDocument()
    doc.stages["snapshot.source.snap1"] = StageRecord(
        type="snapshot",
        inputs={"repo": "r"},
        inputs_digest="sha256:ab",
        outputs={"uuid": "u1"},
        status="complete",
        attempts=2,
        checkpoint={"shard": 3},
        depends_on=["capture.source"],
    )
    doc.record(who="ann@host", operation="apply", address="snapshot.source.snap1", result="ok")
    again = decode_document(encode_document(doc), "mem")
    assert again == doc
    assert again.history[0].serial == 1  # stamped with the serial the document will be stored as


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "is empty"),
        (b'{"format_version": 1, "lineage": "x", "serial": 3, "stages": {', "corrupt"),
        (b'{"serial": "three"}', "serial"),
        (b'{"stages": {"a": {"type": "t", "status": "exploded"}}}', "stages.a.status"),
    ],
)
def test_damaged_documents_are_errors_naming_the_place(data: bytes, expected: str) -> None:
    with pytest.raises(StateError) as err:
        decode_document(data, "somewhere/state.json")
    assert "somewhere/state.json" in str(err.value) and expected in str(err.value)


def test_newer_format_is_refused() -> None:
    with pytest.raises(StateError, match="format_version 99"):
        decode_document(b'{"format_version": 99}', "s")


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "secret",
        "clientSecret",
        "token",
        "sessionToken",
        "access_key",
        "accessKey",
        "secret_key",
        "secretAccessKey",
        "api_key",
        "apiKey",
        "x-api-key",
        "Authorization",
        "private_key",
        "tokens",
        "credentials",
    ],
)
def test_secret_keys_are_recognised(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["tokenizer", "username", "keyword", "access", "endpoint", "key", "secretary_name"])
def test_ordinary_keys_are_not_secret(key: str) -> None:
    assert not is_secret_key(key)


def test_masking_hides_strings_under_secret_keys_and_keeps_structure() -> None:
    doc = StateDocument()
    inputs = {
        "source": {"auth": {"type": "basic", "username": "admin", "password": "hunter2"}},
        "sink": {"headers": {"Authorization": "Bearer abc.def"}, "tokens": ["t1", "t2"]},
        "analysis": {"tokenizer": "standard"},
        "mappings": {"properties": {"password": {"type": "keyword"}}},
        "already": {"password": SENSITIVE_MASK, "secret": "********", "token": ""},
        "token_count": 3,
    }
    doc.stages["metadata.s.x.t.m0"] = StageRecord(type="metadata", inputs=inputs, outputs={"secretKey": "AKIA-out"})
    masked, count = mask_document(doc)
    stored = masked.stages["metadata.s.x.t.m0"]
    assert count == 5
    assert stored.inputs["source"]["auth"] == {"type": "basic", "username": "admin", "password": SENSITIVE_MASK}
    assert stored.inputs["sink"] == {"headers": {"Authorization": SENSITIVE_MASK}, "tokens": [SENSITIVE_MASK] * 2}
    assert stored.inputs["analysis"] == {"tokenizer": "standard"}
    assert stored.inputs["mappings"] == {"properties": {"password": {"type": "keyword"}}}
    assert stored.inputs["already"] == {"password": SENSITIVE_MASK, "secret": "********", "token": ""}
    assert stored.inputs["token_count"] == 3
    assert stored.outputs == {"secretKey": SENSITIVE_MASK}
    # the caller's document still has the values: the engine may need them in memory
    assert doc.stages["metadata.s.x.t.m0"].inputs["source"]["auth"]["password"] == "hunter2"


def test_masking_nothing_returns_the_same_document() -> None:
    doc = StateDocument(stages={"a.b": StageRecord(type="a", inputs={"user": "x"})})
    assert mask_document(doc) == (doc, 0)
    assert mask_document(doc)[0] is doc


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("30", 30.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        (" 2M ", 120.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "-3", "5x", "m5"])
def test_bad_durations_name_the_argument(text: str) -> None:
    with pytest.raises(ConfigError, match="-lock-timeout"):
        parse_duration(text)


def test_passwords_inside_urls_are_masked_everywhere() -> None:
    doc = StateDocument()
    doc.stages["snapshot.source.s1"] = StageRecord(
        type="snapshot",
        inputs={"endpoint": "https://admin:hunter2@source:9200", "contact": "ops@example.com"},
        last_error="connection refused: http://admin:hunter2@source:9200/_snapshot",
    )
    doc.record(who="ann@h", operation="apply", result="failed", detail="GET https://admin:hunter2@source:9200 failed")
    masked, count = mask_document(doc)
    text = encode_document(masked)
    assert count == 3 and b"hunter2" not in text
    assert masked.stages["snapshot.source.s1"].inputs == {
        "endpoint": "https://admin:(sensitive)@source:9200",
        "contact": "ops@example.com",
    }
    assert masked.history[0].detail == "GET https://admin:(sensitive)@source:9200 failed"
    assert doc.history[0].detail is not None and "hunter2" in doc.history[0].detail  # caller's copy untouched
