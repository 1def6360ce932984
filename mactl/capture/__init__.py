"""Capture and replay: live traffic recorded in front of the source, replayed onto a target.

`proxy` is an asyncio HTTP/1.1 reverse proxy that records mutating requests (and the
source's responses) to a capture log before answering the client; `log` is the one
interface over the two log backends (`log_file`, an embedded segmented log, and
`log_kafka`, a real broker); `record` is how one request/response pair is encoded;
`replayer` reads the log from a position and replays it onto a target with timing,
throughput and transform controls, and reports lag and status mismatches.

This package must not touch the mactl state: the providers in `mactl.providers`
(capture, replay, switchover, disable_capture, teardown) drive it and persist outputs.
"""
