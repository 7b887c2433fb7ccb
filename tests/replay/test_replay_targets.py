"""`carebus replay`'s pure parts: which consumer a replay goes into, the subjects it may
republish, what marks a copy, the arguments, and the progress it shows."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re

import pytest

from carebus_shared.cli.main import _parser
from carebus_shared.cli.replay import moment, usage_problem
from carebus_shared.jetstream.topology import (
    ERP_POSTER,
    MAPPER,
    TOPOLOGY,
    VALIDATOR_BILLING,
    VALIDATOR_SCHEDULING,
    partitions_of,
)
from carebus_shared.jetstream.window import Window
from carebus_shared.replay.headers import (
    REPLAY,
    REPLAY_OF,
    copy_headers,
    is_copy,
    origin_key,
    replay_msg_id,
)
from carebus_shared.replay.progress import Bar, Lines, progress_line, rate_and_eta
from carebus_shared.replay.targets import (
    OtherConsumer,
    ReplayRefused,
    intersect,
    others_receiving,
    resolve,
)


@pytest.mark.parametrize(
    ("a", "b", "both"),
    [
        ("scheduling.>", "scheduling.>", "scheduling.>"),
        ("scheduling.>", "scheduling.appointment.*.v1.S1", "scheduling.appointment.*.v1.S1"),
        ("erp.journal.requested.v1.*", "erp.>", "erp.journal.requested.v1.*"),
        ("erp.journal.requested.v1.*", "*.*.*.*.S7", "erp.journal.requested.v1.S7"),
        ("erp.journal.requested.v1.*", "erp.journal.posted.v1.*", None),
        ("a.*", "a.>", "a.*"),
        ("a.>", "a", None),  # '>' takes one token or more
        ("a.b", "a.b.c", None),
        (">", ">", ">"),
        ("billing.>", "scheduling.>", None),
    ],
)
def test_two_filters_intersect_token_by_token(a: str, b: str, both: str | None) -> None:
    assert intersect(a, b) == both
    assert intersect(b, a) == both


@pytest.mark.parametrize(
    ("into", "stream", "durable", "subject"),
    [
        ("masterdata-validator", "SCHEDULING", VALIDATOR_SCHEDULING, "scheduling.>"),
        ("validator", "BILLING", VALIDATOR_BILLING, "billing.>"),
        (VALIDATOR_BILLING, "BILLING", VALIDATOR_BILLING, "billing.>"),
        ("mapper", "VALIDATED", MAPPER, "validated.>"),
        # The ERP stream also holds the poster's outcomes: only the requests go back in.
        ("poster", "ERP", ERP_POSTER, "erp.journal.requested.*.>"),
        ("erp-poster", "ERP", ERP_POSTER, "erp.journal.requested.*.>"),
    ],
)
def test_a_stage_is_reached_through_its_consumer_on_the_stream(
    into: str, stream: str, durable: str, subject: str
) -> None:
    target = resolve(into, stream)
    assert (target.consumer.durable, target.consumer.stream, target.subject) == (
        durable,
        stream,
        subject,
    )


def test_a_subject_narrows_what_is_replayed() -> None:
    target = resolve("poster", "ERP", "erp.*.*.*.SITE07.>")
    assert target.subject == "erp.journal.requested.*.SITE07.>"
    # Five tokens: only what was stored before partitions (docs/decisions/030).
    assert resolve("poster", "ERP", "erp.*.*.*.SITE07").subject == "erp.journal.requested.*.SITE07"
    assert resolve("mapper", "VALIDATED", "validated.charge.>").subject == "validated.charge.>"


def test_a_partitioned_stage_receives_its_copies_through_every_partition() -> None:
    target = resolve("mapper", "VALIDATED")
    assert target.receiving == partitions_of(MAPPER)
    assert resolve("mapper-p3", "VALIDATED").stage == "mapper"
    listed = [OtherConsumer(d, ()) for d in partitions_of(MAPPER)]
    assert others_receiving(target, [*listed, OtherConsumer("archiver", ())]) == [
        OtherConsumer("archiver", ())
    ]


@pytest.mark.parametrize(
    ("into", "stream", "subject", "says"),
    [
        ("ledger", "ERP", None, "unknown stage 'ledger'; one of: masterdata-validator, mapper"),
        ("mapper", "NOPE", None, "unknown stream 'NOPE'"),
        ("mapper", "SCHEDULING", None, "mapper does not consume SCHEDULING; it consumes VALIDATED"),
        (
            "validator",
            "MASTERDATA",
            None,
            "does not consume MASTERDATA; it consumes BILLING, SCHED",
        ),
        ("poster", "ERP", "erp.journal.posted.>", "--subject erp.journal.posted.> is not among"),
        ("validator", "BILLING", "scheduling.>", "is not among what masterdata-validator-billing"),
    ],
)
def test_a_replay_that_cannot_reach_its_stage_is_refused_saying_why(
    into: str, stream: str, subject: str | None, says: str
) -> None:
    with pytest.raises(ReplayRefused, match=re.escape(says)):
        resolve(into, stream, subject)


def test_another_durable_consumer_that_would_receive_the_copies_is_found() -> None:
    target = resolve("poster", "ERP")
    listed = [
        OtherConsumer(ERP_POSTER, ("erp.journal.requested.*.>",)),  # the target itself
        OtherConsumer("ledger-audit", ("erp.journal.posted.v1.>",)),  # other subjects
        OtherConsumer("archiver", ()),  # the whole stream
        OtherConsumer("site-7-feed", ("erp.*.*.*.SITE07.>",)),  # overlaps
    ]
    assert [c.name for c in others_receiving(target, listed)] == ["archiver", "site-7-feed"]
    only_site_8 = resolve("poster", "ERP", "erp.journal.requested.v1.SITE08.>")
    assert [c.name for c in others_receiving(only_site_8, listed)] == ["archiver"]


def test_the_ops_trackers_durables_do_not_stop_a_replay() -> None:
    # They read every stream but keep one step per event id, so copies add nothing there.
    observers = [spec for spec in TOPOLOGY.consumers if not spec.pipeline]
    assert observers
    target = resolve("poster", "ERP")
    listed = [OtherConsumer(spec.durable, spec.filter_subjects) for spec in observers]
    listed.append(OtherConsumer("archiver", ()))
    assert [c.name for c in others_receiving(target, listed)] == ["archiver"]


def test_a_copy_carries_the_original_headers_its_marks_and_a_new_id() -> None:
    original = {"Nats-Msg-Id": "evt-1", "Carebus-Schema-Version": "1.0"}
    headers = copy_headers(original, 7, "BILLING", 42)
    assert headers == {**original, REPLAY: "7", REPLAY_OF: "BILLING:42"}
    assert replay_msg_id(7, "BILLING", 42) == "replay-7-BILLING-42"
    assert replay_msg_id(8, "BILLING", 42) != replay_msg_id(7, "BILLING", 42)
    assert is_copy(headers)
    assert not is_copy(original)
    assert not is_copy(None)


def test_a_copy_is_recorded_as_the_message_it_copies() -> None:
    assert origin_key("BILLING", 900, None) == "BILLING:900"
    assert origin_key("BILLING", 900, copy_headers({}, 3, "BILLING", 42)) == "BILLING:42"
    # A header that does not name a stream and a sequence is not trusted.
    assert origin_key("BILLING", 900, {REPLAY_OF: "BILLING:x"}) == "BILLING:900"
    assert origin_key("BILLING", 900, {REPLAY_OF: "42"}) == "BILLING:900"


def _args(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(["replay", *argv])


ERP_INTO_POSTER = ["--stream", "ERP", "--into", "poster"]
T = "2025-03-10T00:00:00Z"


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        ([*ERP_INTO_POSTER, "--from-seq", "1"], None),
        ([*ERP_INTO_POSTER, "--since", T], None),
        (["--stream", "ERP", "--from-seq", "1"], "--stream and --into are required"),
        (ERP_INTO_POSTER, "give the window's start"),
        ([*ERP_INTO_POSTER, "--from-seq", "1", "--since", T], "give the window's start"),
        ([*ERP_INTO_POSTER, "--from-seq", "1", "--until", T], "--until goes with --since"),
        ([*ERP_INTO_POSTER, "--since", T, "--to-seq", "9"], "--to-seq goes with --from-seq"),
        ([*ERP_INTO_POSTER, "--from-seq", "1", "--max-backlog", "0"], "--max-backlog must be"),
    ],
)
def test_the_window_is_a_start_sequence_or_a_start_time(
    argv: list[str], problem: str | None
) -> None:
    found = usage_problem(_args(*argv))
    assert (found or "").startswith(problem or "")
    assert (found is None) == (problem is None)


def test_times_need_a_zone_and_windows_an_order() -> None:
    assert moment("2025-03-10T06:00:00-06:00") == dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="needs a zone"):
        moment("2025-03-10T06:00:00")
    with pytest.raises(argparse.ArgumentTypeError, match="not an ISO 8601 time"):
        moment("yesterday")
    with pytest.raises(ValueError, match="before the first"):
        Window(from_seq=10, to_seq=9)
    with pytest.raises(ValueError, match="start at 1"):
        Window(from_seq=0)
    since = dt.datetime(2025, 3, 10, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="before the start time"):
        Window(since=since, until=since - dt.timedelta(seconds=1))


def test_rate_and_time_left() -> None:
    assert rate_and_eta(0, 100, 0.0) == (0.0, None)
    assert rate_and_eta(250, 1000, 0.5) == (500.0, 1.5)
    assert (
        progress_line("replay 3", 250, 1000, 0.5) == "replay 3: 250/1,000 (25 %), 500/s, 2 s left"
    )
    assert progress_line("replay 3", 1000, 1000, 2.0) == "replay 3: 1,000/1,000 (100 %), 500/s"


def _plain_lines(total: int) -> list[str]:
    """What a replay of ``total`` messages, a chunk of 500 a second, prints off a terminal."""
    now = [0.0]
    out = io.StringIO()
    lines = Lines(out, every_s=5.0, clock=lambda: now[0])
    lines.start("replay 2", total)
    for done in range(500, total + 1, 500):
        now[0] += 1.0
        lines.update(done)
    lines.close()
    return out.getvalue().splitlines()


def test_plain_lines_off_a_terminal_come_at_most_every_few_seconds() -> None:
    assert _plain_lines(2000) == ["replay 2: 2,000/2,000 (100 %), 500/s"]
    assert _plain_lines(10_000) == [
        "replay 2: 2,500/10,000 (25 %), 500/s, 15 s left",
        "replay 2: 5,000/10,000 (50 %), 500/s, 10 s left",
        "replay 2: 7,500/10,000 (75 %), 500/s, 5 s left",
        "replay 2: 10,000/10,000 (100 %), 500/s",
        "replay 2: 10,000/10,000 (100 %), 500/s",
    ]


def test_on_a_terminal_a_bar_shows_the_count_rate_and_time_left() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    bar = Bar(out)
    bar.start("replay 4 ERP → erp-poster", 1000)
    bar.update(400)
    bar.close()
    shown = out.getvalue()
    assert "replay 4 ERP → erp-poster" in shown
    assert "400/1000" in shown
    assert "/s" in shown
