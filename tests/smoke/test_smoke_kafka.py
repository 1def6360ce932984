"""Smoke test: produce one record to the KRaft broker and consume it back."""

from __future__ import annotations

import time
import uuid

import pytest

pytestmark = pytest.mark.kafka


def test_produce_and_consume_one_record(kafka_broker) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"smoke-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    try:
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
        producer.produce(topic, key=b"k1", value=b"\x00smoke record\xff", headers={"h": b"v"})
        assert producer.flush(30) == 0

        consumer = Consumer(
            {"bootstrap.servers": kafka_broker.bootstrap, "group.id": topic, "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([topic])
        record = None
        deadline = time.monotonic() + 60
        while record is None and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                record = msg
        consumer.close()
        assert record is not None, f"no record came back from {topic} within 60s"
        assert (record.key(), record.value(), record.headers()) == (b"k1", b"\x00smoke record\xff", [("h", b"v")])
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)
