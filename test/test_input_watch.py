"""Diagnosis of inputs that never pair (stereo_depth_ros.input_watch)."""

import pytest

from stereo_depth_ros.input_watch import InputArrivals, forget_after_jump

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


def test_a_period_with_pairs_forgets_its_counts() -> None:
    arrivals = InputArrivals(TOPICS)
    for topic in TOPICS:
        arrivals.record(topic, 3)
    assert arrivals.unpaired_note(1) is None
    text, problem = arrivals.diagnosis(5.0, approximate=False)
    assert not problem and text.startswith('no message on ' + ', '.join(TOPICS))


def test_few_pairs_of_many_messages_are_named() -> None:
    arrivals = InputArrivals(TOPICS)
    for frame in range(40):
        for topic in TOPICS:
            arrivals.record(topic, frame * 100_000_000)
    arrivals.record(TOPICS[1], 3_950_000_000)  # the right camera: one message more
    note = arrivals.unpaired_note(5)
    assert note is not None and note.startswith('only 5 stereo sets paired of 40 possible')
    assert '/right/image_rect 41' in note and 'differ by 0.050 s' in note
    for frame in range(40):
        for topic in TOPICS:
            arrivals.record(topic, 4_000_000_000 + frame * 100_000_000)
    assert arrivals.unpaired_note(20) is None  # half of them: a camera dropping frames


def test_a_camera_that_stopped_for_seconds_is_named() -> None:
    # The right camera silent for most of a period: every one of its images paired, so the
    # pair count alone (7 of 7 possible) says nothing.
    arrivals = InputArrivals(TOPICS)
    for frame in range(50):
        for topic in TOPICS:
            if topic != TOPICS[1] or frame < 7:
                arrivals.record(topic, frame * 100_000_000)
    note = arrivals.unpaired_note(7)
    assert note is not None and note.startswith('few messages on /right/image_rect')
    assert '/right/image_rect 7' in note and '/left/image_rect 50' in note
    # A right camera at twice the left's rate, all left images paired: no news.
    for frame in range(80):
        for topic in TOPICS:
            if topic in (TOPICS[1], TOPICS[3]) or frame % 2 == 0:
                arrivals.record(topic, frame * 50_000_000)
    assert arrivals.unpaired_note(40) is None


def test_inputs_starting_one_after_the_other_are_no_news() -> None:
    # The right camera comes up 4 s after the others: its count is compared from then on.
    arrivals = InputArrivals(TOPICS)
    for frame in range(50):
        for topic in TOPICS:
            if topic != TOPICS[1] or frame >= 40:
                arrivals.record(topic, frame * 100_000_000)
    assert arrivals.unpaired_note(10) is None
    # Had it been on from the start and stopped, the same counts are news.
    arrivals = InputArrivals(TOPICS)
    for frame in range(50):
        for topic in TOPICS:
            if topic != TOPICS[1] or frame < 10 or frame == 49:
                arrivals.record(topic, frame * 100_000_000)
    note = arrivals.unpaired_note(11)
    assert note is not None and note.startswith('few messages on /right/image_rect')


def test_scarce_camera_info_is_named_as_such() -> None:
    infos = [topic for topic in TOPICS if topic.endswith('camera_info')]
    arrivals = InputArrivals(TOPICS, infos)
    for frame in range(50):
        for topic in TOPICS:
            if topic not in infos or frame % 10 == 0:
                arrivals.record(topic, frame * 100_000_000)
    note = arrivals.unpaired_note(5)
    assert note is not None and note.startswith('camera_info comes less often than the images')
    assert ', '.join(infos) in note and 'one with every image' in note
    # A silent image topic is still a camera that stopped, named alone.
    for frame in range(50):
        for topic in TOPICS:
            if topic != TOPICS[0] or frame < 5:
                arrivals.record(topic, 5_000_000_000 + frame * 100_000_000)
    note = arrivals.unpaired_note(5)
    assert note is not None and note.startswith(f'few messages on {TOPICS[0]} ')
    with pytest.raises(ValueError, match='not input topics'):
        InputArrivals(TOPICS, ['/left/info'])


def test_time_going_back_is_told_from_reordering() -> None:
    arrivals = InputArrivals(TOPICS)
    assert arrivals.record(TOPICS[0], 5_000_000_000) == 0
    assert arrivals.record(TOPICS[0], 4_950_000_000) == 0  # 50 ms: delivered out of order
    assert arrivals.record(TOPICS[0], 1_000_000_000) == 3_950_000_000  # the bag again
    assert arrivals.record(TOPICS[0], 1_100_000_000) == 0
    assert arrivals.record(TOPICS[1], 1_000_000_000) == 0  # a topic's first message


class _TimeSynchronizer:
    """message_filters' exact TimeSynchronizer, as its add() works: the oldest stamp goes."""

    def __init__(self, inputs: int, queue_size: int) -> None:
        self.queues: list[dict[int, str]] = [{} for _ in range(inputs)]
        self.queue_size = queue_size
        self.sets: list[tuple[str, ...]] = []

    def add(self, index: int, stamp: int, message: str) -> None:
        queue = self.queues[index]
        queue[stamp] = message
        while len(queue) > self.queue_size:
            del queue[min(queue)]
        for common in sorted(set.intersection(*(set(q) for q in self.queues))):
            self.sets.append(tuple(q.pop(common) for q in self.queues))


def _replay(sync: _TimeSynchronizer, arrivals: InputArrivals, tag: str, frames: int,
            right_frames: int, forget: bool) -> list[tuple[str, ...]]:
    """Feed a bag of ``frames`` stereo sets (right images up to ``right_frames``)."""
    start = len(sync.sets)
    for frame in range(frames):
        stamp = 1_000_000_000 + frame * 100_000_000
        for index, topic in enumerate(TOPICS):
            if index == 1 and frame >= right_frames:
                continue
            went_back = arrivals.record(topic, stamp)
            if went_back and forget:
                forget_after_jump(sync.queues, stamp, went_back)
            sync.add(index, stamp, f'{tag}{frame}')
    return sync.sets[start:]


@pytest.mark.parametrize('forget', [False, True])
def test_a_replayed_bag_pairs_again_once_later_stamps_are_forgotten(forget: bool) -> None:
    # A bag whose last second lacks right images, then the same bag again, as a node that
    # keeps running sees a second `ros2 bag play`: unpaired messages of the first pass are
    # stamped later than everything of the second.
    sync, arrivals = _TimeSynchronizer(4, 5), InputArrivals(TOPICS)
    assert len(_replay(sync, arrivals, 'a', 40, 30, forget)) == 30
    second = _replay(sync, arrivals, 'b', 40, 40, forget)
    if not forget:  # message_filters alone: 5 of 40, mixing the two passes' messages
        assert len(second) == 5 and any(set(s) != {s[0]} for s in second)
        return
    assert len(second) == 40 and all(s == (f'b{n}',) * 4 for n, s in enumerate(second))


def test_after_a_jump_the_new_pass_already_queued_stays() -> None:
    # Approximate sync: the right camera's first image of the second pass (5 ms later than
    # the left one) is queued when the left image shows the jump back from 3.9 s to 1 s;
    # what stays is that image, what goes is the first pass's leftovers (3.5 s, 3.9 s).
    left = {3_500_000_000: 'old', 3_900_000_000: 'old'}
    right = {1_005_000_000: 'new', 3_600_000_000: 'old'}
    assert forget_after_jump([left, right], 1_000_000_000, 2_900_000_000) == 3
    assert left == {} and right == {1_005_000_000: 'new'}


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


def test_a_camera_that_stopped_is_named_not_its_camera_info_alone() -> None:
    # A dead camera stops its image and its camera_info together: the note must name both as
    # a camera that stopped, not advise publishing camera_info with every image.
    infos = [topic for topic in TOPICS if topic.endswith('camera_info')]
    arrivals = InputArrivals(TOPICS, infos)
    for frame in range(50):
        for topic in TOPICS:
            if topic not in (TOPICS[1], TOPICS[3]) or frame < 7:
                arrivals.record(topic, frame * 100_000_000)
    note = arrivals.unpaired_note(7)
    assert note is not None
    assert note.startswith(f'few messages on {TOPICS[1]}, {TOPICS[3]} ')
    assert 'camera_info comes less often' not in note
    # The right camera_info alone scarce: that one is named as camera_info.
    for frame in range(50):
        for topic in TOPICS:
            if topic != TOPICS[3] or frame % 10 == 0:
                arrivals.record(topic, 5_000_000_000 + frame * 100_000_000)
    note = arrivals.unpaired_note(5)
    assert note is not None
    assert note.startswith(f'camera_info comes less often than the images on {TOPICS[3]} ')


def test_the_jump_and_forget_limits_are_strict() -> None:
    # Exactly BACKWARD_JUMP_NS back is still reordering; a stamp exactly halfway back stays.
    arrivals = InputArrivals(TOPICS)
    arrivals.record(TOPICS[0], 1_100_000_000)
    assert arrivals.record(TOPICS[0], 1_000_000_000) == 0
    assert arrivals.record(TOPICS[0], 899_999_999) == 100_000_001
    queue = {2_000_000_000: 'halfway', 2_000_000_001: 'leftover'}
    assert forget_after_jump([queue], 1_000_000_000, 2_000_000_000) == 1
    assert queue == {2_000_000_000: 'halfway'}


def test_a_camera_at_half_the_other_s_rate_is_no_news() -> None:
    # Exactly half the median topic's count is not "less than half": all its images paired.
    arrivals = InputArrivals(TOPICS)
    for frame in range(40):
        for topic in TOPICS:
            if topic != TOPICS[1] or frame % 2 == 0:
                arrivals.record(topic, frame * 100_000_000)
    assert arrivals.unpaired_note(20) is None
