"""The replayer's cross-connection ordering (`_Causality`): a request waits for the other
senders' requests that finished on the source before it began, never for its own sender's."""

from __future__ import annotations

import threading
import time

from mactl.capture.replayer import _Causality


def test_a_request_never_waits_for_one_queued_behind_it_on_its_own_sender() -> None:
    causality = _Causality(timeout=1.0, workers=2)
    causality.add(5.0, worker=0)  # dispatched later, but answered on the source earlier
    started = time.monotonic()
    causality.wait_before(10.0, threading.Event(), worker=0)
    assert time.monotonic() - started < 0.5 and causality.timeouts == 0


def test_a_request_waits_for_an_earlier_answer_on_another_sender_until_it_is_done() -> None:
    causality = _Causality(timeout=5.0, workers=2)
    causality.add(5.0, worker=1)
    causality.add(20.0, worker=1)  # answered after our request began: not waited for
    finisher = threading.Timer(0.3, causality.done, args=(5.0, 1))
    finisher.start()
    started = time.monotonic()
    causality.wait_before(10.0, threading.Event(), worker=0)
    waited = time.monotonic() - started
    finisher.join()
    assert 0.25 <= waited < 4.0 and causality.timeouts == 0


def test_a_wait_that_never_clears_times_out_and_is_counted() -> None:
    causality = _Causality(timeout=0.2, workers=3)
    causality.add(1.0, worker=2)
    causality.wait_before(10.0, threading.Event(), worker=0)
    assert causality.timeouts == 1
    causality.done(1.0, worker=2)
    causality.wait_before(10.0, threading.Event(), worker=0)
    assert causality.timeouts == 1
