"""The list-watch state machine, one transition at a time, without I/O."""

from __future__ import annotations

from typing import Any

import pytest

from kctl_runtime.watcher import (
    Apply,
    BackOff,
    Bookmark,
    Delete,
    Empty,
    Failed,
    GoneInput,
    Init,
    InitApply,
    InitDone,
    InitListed,
    InitListing,
    InitStreaming,
    KeepWatching,
    ListPage,
    PageReceived,
    StartStreamingList,
    StartWatch,
    StreamEnded,
    StreamStalled,
    WatcherConfig,
    WatchEvent,
    Watching,
    initial_action,
    step,
)


def cm(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv}}


def test_a_fresh_watcher_lists_the_first_page() -> None:
    assert initial_action(Empty()) == ListPage(None)


def test_a_single_page_list_emits_init_objects_and_done_then_watches_from_the_list_version() -> None:
    a, b = cm("a", "5"), cm("b", "7")
    result = step(Empty(), PageReceived([a, b], "10", None))
    assert result.events == (Init(), InitApply(a), InitApply(b), InitDone("10"))
    assert result.state == InitListed("10")
    assert result.action == StartWatch("10")


def test_pagination_follows_continue_tokens_and_sends_init_only_once() -> None:
    first = step(Empty(), PageReceived([cm("a", "1")], "10", "tok-1"))
    assert first.events == (Init(), InitApply(cm("a", "1")))
    assert first.state == InitListing("tok-1")
    assert first.action == ListPage("tok-1")
    second = step(first.state, PageReceived([cm("b", "2")], "10", "tok-2"))
    assert second.events == (InitApply(cm("b", "2")),)
    assert second.action == ListPage("tok-2")
    last = step(second.state, PageReceived([cm("c", "3")], "10", None))
    assert last.events == (InitApply(cm("c", "3")), InitDone("10"))
    assert last.state == InitListed("10")
    assert last.action == StartWatch("10")


def test_an_empty_list_still_completes_the_initial_sync() -> None:
    result = step(Empty(), PageReceived([], "3", None))
    assert result.events == (Init(), InitDone("3"))
    assert result.action == StartWatch("3")


def test_watch_events_become_apply_and_delete_and_advance_the_resource_version() -> None:
    added = step(InitListed("10"), WatchEvent("ADDED", cm("a", "11")))
    assert added.events == (Apply(cm("a", "11")),)
    assert added.state == Watching("11")
    assert added.action == KeepWatching()
    modified = step(added.state, WatchEvent("MODIFIED", cm("a", "12")))
    assert modified.events == (Apply(cm("a", "12")),)
    assert modified.state == Watching("12")
    deleted = step(modified.state, WatchEvent("DELETED", cm("a", "13")))
    assert deleted.events == (Delete(cm("a", "13")),)
    assert deleted.state == Watching("13")


def test_a_bookmark_advances_the_resource_version_without_an_object_event() -> None:
    bookmark = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": "99"}}
    result = step(Watching("12"), WatchEvent("BOOKMARK", bookmark))
    assert result.events == (Bookmark("99"),)
    assert result.state == Watching("99")
    assert result.action == KeepWatching()


def test_a_stream_that_ends_resumes_from_the_last_seen_version_without_relisting() -> None:
    result = step(Watching("42"), StreamEnded(duration=300.0, events=0))
    assert result.events == ()
    assert result.state == Watching("42")
    assert result.action == StartWatch("42")


def test_a_stream_that_ends_at_once_without_events_backs_off_instead_of_spinning() -> None:
    result = step(Watching("42"), StreamEnded(duration=0.01, events=0))
    assert result.state == Watching("42")
    assert isinstance(result.action, BackOff)
    assert result.action.then == StartWatch("42")
    assert not result.action.relist


def test_a_short_stream_that_delivered_events_resumes_at_once() -> None:
    result = step(Watching("42"), StreamEnded(duration=0.01, events=3))
    assert result.action == StartWatch("42")


def test_a_silent_stream_past_the_inactivity_limit_resumes_from_the_last_version() -> None:
    result = step(Watching("42"), StreamStalled())
    assert result.action == StartWatch("42")
    assert result.state == Watching("42")


def test_a_watch_that_ends_right_after_the_list_resumes_from_the_list_version() -> None:
    result = step(InitListed("10"), StreamEnded(duration=400.0, events=0))
    assert result.action == StartWatch("10")


def test_http_410_while_watching_relists_from_scratch_after_a_backoff() -> None:
    result = step(Watching("42"), GoneInput())
    assert result.state == Empty()
    assert result.action == BackOff(ListPage(None), reason="410 Gone", relist=True)


def test_an_error_event_carrying_a_410_status_relists() -> None:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired"}
    result = step(Watching("42"), WatchEvent("ERROR", status))
    assert result.state == Empty()
    assert isinstance(result.action, BackOff)
    assert result.action.then == ListPage(None)
    assert result.action.relist


def test_an_error_event_with_another_status_backs_off_and_resumes_the_watch() -> None:
    status = {"kind": "Status", "code": 500, "message": "etcd hiccup"}
    result = step(Watching("42"), WatchEvent("ERROR", status))
    assert result.state == Watching("42")
    assert isinstance(result.action, BackOff)
    assert result.action.then == StartWatch("42")
    assert not result.action.relist


def test_an_expired_continue_token_restarts_the_list_from_the_first_page() -> None:
    result = step(InitListing("tok-3"), GoneInput())
    assert result.state == Empty()
    assert isinstance(result.action, BackOff)
    assert result.action.then == ListPage(None)


def test_a_failed_page_backs_off_and_retries_the_same_page() -> None:
    result = step(InitListing("tok-3"), Failed(500, message="boom"))
    assert result.state == InitListing("tok-3")
    assert isinstance(result.action, BackOff)
    assert result.action.then == ListPage("tok-3")


def test_a_failed_first_list_backs_off_and_lists_again() -> None:
    result = step(Empty(), Failed(None, message="connection refused"))
    assert result.state == Empty()
    assert isinstance(result.action, BackOff)
    assert result.action.then == ListPage(None)


def test_too_many_requests_carries_the_servers_retry_after_into_the_backoff() -> None:
    result = step(Watching("7"), Failed(429, retry_after=3.0, message="slow down"))
    assert isinstance(result.action, BackOff)
    assert result.action.retry_after == 3.0
    assert result.action.then == StartWatch("7")


def test_a_failed_watch_request_resumes_from_the_last_version_after_backoff() -> None:
    result = step(Watching("7"), Failed(503))
    assert result.state == Watching("7")
    assert isinstance(result.action, BackOff)
    assert result.action.then == StartWatch("7")


def test_an_unknown_watch_event_type_backs_off_and_resumes() -> None:
    result = step(Watching("7"), WatchEvent("WEIRD", {}))
    assert result.events == ()
    assert isinstance(result.action, BackOff)
    assert result.action.then == StartWatch("7")


def test_an_event_without_a_resource_version_keeps_the_last_one() -> None:
    result = step(Watching("7"), WatchEvent("MODIFIED", {"metadata": {"name": "x"}}))
    assert result.state == Watching("7")


def test_a_relist_after_410_starts_with_a_new_init() -> None:
    gone = step(Watching("42"), GoneInput())
    relisted = step(gone.state, PageReceived([cm("a", "50")], "60", None))
    assert relisted.events[0] == Init()
    assert relisted.events[-1] == InitDone("60")
    assert relisted.action == StartWatch("60")


def test_inputs_that_cannot_happen_in_a_state_are_programming_errors() -> None:
    with pytest.raises(TypeError):
        step(Watching("1"), PageReceived([], "2", None))
    with pytest.raises(TypeError):
        step(Empty(), WatchEvent("ADDED", cm("a", "1")))


def test_initial_action_of_each_state_is_the_next_request() -> None:
    assert initial_action(InitListing("t")) == ListPage("t")
    assert initial_action(InitListed("5")) == StartWatch("5")
    assert initial_action(Watching("6")) == StartWatch("6")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page_size": -1}, "page_size"),
        ({"timeout_range": (0, 10)}, "timeout_range"),
        ({"timeout_range": (20, 10)}, "timeout_range"),
        ({"inactivity_timeout": 0.0}, "inactivity_timeout"),
        ({"backoff_initial": 10.0, "backoff_max": 1.0}, "initial"),
    ],
)
def test_invalid_watcher_config_is_rejected_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WatcherConfig(**kwargs)


def test_each_watch_asks_for_a_random_server_timeout_between_five_and_ten_minutes() -> None:
    from kctl_runtime.resource import CONFIGMAPS
    from kctl_runtime.watcher import Watcher

    values = iter([0.0, 0.5, 0.999])
    watcher = Watcher(None, CONFIGMAPS, rand=lambda: next(values))
    assert [watcher.watch_timeout() for _ in range(3)] == [300, 450, 599]


def test_the_default_inactivity_limit_is_twice_the_watch_timeout() -> None:
    from kctl_runtime.resource import CONFIGMAPS
    from kctl_runtime.watcher import Watcher

    assert Watcher(None, CONFIGMAPS)._inactivity(450) == 900
    configured = Watcher(None, CONFIGMAPS, WatcherConfig(inactivity_timeout=45.0))
    assert configured._inactivity(450) == 45.0


# --------------------------------------------------------------------------- streaming lists


def end_bookmark(rv: str) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": rv, "annotations": {"k8s.io/initial-events-end": "true"}},
    }


def test_a_streaming_watcher_starts_with_a_streaming_list_instead_of_a_page() -> None:
    assert initial_action(Empty(), streaming=True) == StartStreamingList()


def test_a_streaming_list_delivers_init_objects_and_done_at_the_end_bookmark() -> None:
    a, b = cm("a", "5"), cm("b", "7")
    first = step(Empty(), WatchEvent("ADDED", a), streaming=True)
    assert first.events == (Init(), InitApply(a))
    assert first.state == InitStreaming()
    assert first.action == KeepWatching()
    second = step(first.state, WatchEvent("ADDED", b), streaming=True)
    assert second.events == (InitApply(b),)
    done = step(second.state, WatchEvent("BOOKMARK", end_bookmark("9")), streaming=True)
    assert done.events == (InitDone("9"),)
    assert done.state == Watching("9")
    assert done.action == KeepWatching()
    later = step(done.state, WatchEvent("MODIFIED", cm("a", "10")), streaming=True)
    assert later.events == (Apply(cm("a", "10")),)


def test_a_streaming_list_of_an_empty_collection_is_just_the_end_bookmark() -> None:
    result = step(Empty(), WatchEvent("BOOKMARK", end_bookmark("4")), streaming=True)
    assert result.events == (Init(), InitDone("4"))
    assert result.state == Watching("4")


def test_ordinary_bookmarks_inside_a_streaming_list_are_ignored() -> None:
    plain = {"metadata": {"resourceVersion": "3"}}
    result = step(InitStreaming(), WatchEvent("BOOKMARK", plain), streaming=True)
    assert result.events == ()
    assert result.state == InitStreaming()
    assert result.action == KeepWatching()


def test_an_interrupted_streaming_list_starts_over_after_a_backoff() -> None:
    for interruption in (StreamEnded(30.0, 5), StreamStalled(), Failed(500)):
        result = step(InitStreaming(), interruption, streaming=True)
        assert result.state == Empty()
        assert isinstance(result.action, BackOff)
        assert result.action.then == StartStreamingList()


def test_a_streaming_watcher_relists_by_streaming_after_a_410() -> None:
    result = step(Watching("42"), GoneInput(), streaming=True)
    assert result.state == Empty()
    assert result.action == BackOff(StartStreamingList(), reason="410 Gone", relist=True)


def test_a_streaming_watcher_resumes_a_dropped_watch_from_the_last_version() -> None:
    result = step(Watching("42"), StreamEnded(300.0, 0), streaming=True)
    assert result.action == StartWatch("42")


def test_a_streaming_list_the_server_refuses_falls_back_to_a_paginated_list() -> None:
    # Real example: an API server on an etcd without progress notify answers with this ERROR event.
    refusal = {"kind": "Status", "code": 500, "message": "required storage feature RequestWatchProgress"}
    assert step(Empty(), WatchEvent("ERROR", refusal), streaming=True).action == ListPage(None)
    assert step(Empty(), Failed(422, message="forbidden"), streaming=True).action == ListPage(None)


def test_a_streaming_list_that_is_throttled_or_unreachable_is_retried_as_a_stream() -> None:
    for failure in (Failed(429, retry_after=2.0), Failed(None, message="connection refused")):
        result = step(Empty(), failure, streaming=True)
        assert isinstance(result.action, BackOff)
        assert result.action.then == StartStreamingList()


def test_a_malformed_watch_line_is_a_failure_that_never_reaches_the_sink() -> None:
    from kctl_runtime.resource import CONFIGMAPS
    from kctl_runtime.watcher import Watcher, WatcherEvent

    watcher = Watcher(None, CONFIGMAPS)
    watcher.state = Watching("7")
    received: list[WatcherEvent] = []
    for line in (
        b"<html>proxy error</html>",
        b'{"type":"ADDED"}',
        b'{"type":"ADDED","object":{"metadata":{}}}',
    ):
        action = watcher.feed_line(line, received.append)
        assert isinstance(action, BackOff)
        assert action.then == StartWatch("7")
    assert received == []
    good = b'{"type":"MODIFIED","object":{"metadata":{"name":"a","namespace":"ns","resourceVersion":"8"}}}'
    assert watcher.feed_line(good, received.append) == KeepWatching()
    assert received == [Apply({"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "8"}})]
    assert watcher.state == Watching("8")
