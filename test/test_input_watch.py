"""Diagnosis of inputs that never pair (stereo_depth_ros.input_watch)."""

import pytest

from stereo_depth_ros.input_watch import InputArrivals

TOPICS = ['/left/image_rect', '/right/image_rect', '/left/camera_info', '/right/camera_info']


def test_names_only_the_silent_topics_and_counts_the_others() -> None:
    arrivals = InputArrivals(TOPICS)
    for topic in TOPICS[:3]:
        arrivals.record(topic, 1_000_000_000)
    arrivals.record(TOPICS[0], 1_100_000_000)
    text, problem = arrivals.diagnosis(5.0, approximate=False)
    assert problem
    assert text.startswith('no message on /right/camera_info in 5 s')
    assert '/left/image_rect (2)' in text and '/right/image_rect (1)' in text
    assert 'QoS' in text


def test_all_silent_is_waiting_not_a_problem() -> None:
    text, problem = InputArrivals(TOPICS).diagnosis(5.0, approximate=False)
    assert not problem
    assert text.startswith('no message on ' + ', '.join(TOPICS))


def test_unmatched_stamps_are_listed_with_their_spread() -> None:
    arrivals = InputArrivals(TOPICS)
    for index, topic in enumerate(TOPICS):
        arrivals.record(topic, 2_000_000_000 + index * 10_000_000)
    text, problem = arrivals.diagnosis(5.0, approximate=False)
    assert problem
    assert 'none paired' in text and 'spread 0.030 s' in text
    assert '/right/camera_info 2.030000' in text and 'approximate_sync true' in text
    for topic in TOPICS:
        arrivals.record(topic, 5)
    text, _ = arrivals.diagnosis(5.0, approximate=True, tolerance_s=0.02)
    assert '(0.02 s)' in text and 'spread 0.000 s' in text


def test_each_diagnosis_starts_a_new_period() -> None:
    arrivals = InputArrivals(TOPICS)
    for topic in TOPICS:
        arrivals.record(topic, 7)
    assert arrivals.diagnosis(5.0, approximate=False)[0].startswith('all inputs arrive')
    text, problem = arrivals.diagnosis(5.0, approximate=False)
    assert not problem and text.startswith('no message on')


def test_unknown_topic_and_empty_topic_list_are_refused() -> None:
    with pytest.raises(KeyError, match='unknown input topic'):
        InputArrivals(TOPICS).record('/camera/left', 0)
    with pytest.raises(ValueError, match='at least one'):
        InputArrivals([])


def test_reset_forgets_the_period() -> None:
    arrivals = InputArrivals(TOPICS)
    arrivals.record(TOPICS[0], 3)
    arrivals.reset()
    text, problem = arrivals.diagnosis(5.0, approximate=False)
    assert not problem and text.startswith('no message on ' + ', '.join(TOPICS))


def test_the_kind_of_problem_keys_the_throttle() -> None:
    arrivals = InputArrivals(TOPICS)
    arrivals.record(TOPICS[0], 1)
    arrivals.diagnosis(5.0, approximate=False)
    first = arrivals.last_kind
    arrivals.record(TOPICS[1], 1)
    arrivals.diagnosis(5.0, approximate=False)  # another topic is silent now: a new kind
    assert first != arrivals.last_kind and first.startswith('silent: ')
    for topic in TOPICS:
        arrivals.record(topic, 7)
    arrivals.diagnosis(5.0, approximate=False)
    assert arrivals.last_kind == 'unpaired'
