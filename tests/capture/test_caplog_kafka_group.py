"""A replay's rollback forgets its Kafka consumer group's offsets, or says it could not.

Kafka refuses to delete a group that still has members (a replayer killed outright stays
one until its session times out). The refusal used to be ignored: the rollback reported
the offsets forgotten while the group kept them. `log_kafka.delete_group` now checks the
offsets are gone, tries again while a member lingers, and fails naming the group.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from mactl.capture import log_kafka
from mactl.errors import ProviderError

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]


@pytest.fixture
def topic_cfg(kafka_broker: Any) -> Any:
    cfg = {"type": "kafka", "bootstrapServers": kafka_broker.bootstrap, "topic": f"mactl-grp-{uuid.uuid4().hex[:8]}"}
    log_kafka.init_log(cfg)
    yield cfg
    log_kafka.delete_log(cfg)


def _member(cfg: dict[str, Any], group: str, stop: threading.Event) -> threading.Thread:
    """A consumer that joins `group`, commits offset 0 and stays a member until `stop`."""
    joined = threading.Event()

    def run() -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": cfg["bootstrapServers"],
                "group.id": group,
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
            }
        )
        consumer.subscribe([cfg["topic"]])
        try:
            while not stop.is_set():
                consumer.poll(0.2)
                if consumer.assignment() and not joined.is_set():
                    consumer.commit(offsets=[TopicPartition(cfg["topic"], 0, 0)], asynchronous=False)
                    joined.set()
        finally:
            consumer.close()  # leaves the group

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert joined.wait(30), "the consumer never joined its group"
    return thread


def _committed(cfg: dict[str, Any], group: str) -> dict[str, int]:
    view = log_kafka.GroupView(cfg, group)
    try:
        return view.committed()
    finally:
        view.close()


def test_a_group_with_a_live_member_is_not_reported_forgotten(topic_cfg: dict[str, Any]) -> None:
    group = f"mactl-replay-test-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    member = _member(topic_cfg, group, stop)
    try:
        with pytest.raises(ProviderError) as err:
            log_kafka.delete_group(topic_cfg, group, timeout=2)
        assert group in err.value.message and "still has committed offsets" in err.value.message
        assert _committed(topic_cfg, group) == {"0": 0}
    finally:
        stop.set()
        member.join(timeout=30)
    # the member left: the same call now forgets the offsets, and says nothing
    log_kafka.delete_group(topic_cfg, group, timeout=20)
    assert _committed(topic_cfg, group) == {}
