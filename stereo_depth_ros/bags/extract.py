"""Stereo pairs from a bag as a folder of ``<n>/left.png, right.png`` (e.g. for adaptation)."""

from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from .reader import BagInput, find_stereo_images
from ..errors import DatasetError, StereoDepthError
from ..images import pair_mismatch
from ..msgs.images import image_label, narrow_16_bit_note, stereo_input_from_message
from ..msgs.types import stamp_to_ns
from ..sync import make_synchronizer, never_matched


def extract_pairs(bag_path: str | Path, out_dir: str | Path, every: int = 1,
                  limit: Optional[int] = None, slop: Optional[float] = None,
                  left_topic: Optional[str] = None, right_topic: Optional[str] = None,
                  progress: bool = True, skipped: Optional[list[str]] = None,
                  bit_depth: Optional[int] = None, notes: Optional[list[str]] = None,
                  chosen: Optional[list[str]] = None,
                  damage: Optional[list[str]] = None) -> int:
    """Write every ``every``-th synchronised image pair of the bag; return how many.

    Pairs are matched by header stamp (exactly, or within ``slop`` seconds); the stereo image
    topics are found by type and name unless given. Undecodable pairs are skipped; with a
    ``skipped`` list, why (one line each, with the left stamp) is appended to it. 16-bit
    images are scaled over ``bit_depth`` bits where given, else over all 16, as the node
    does; where their brightest value needs 9-14 bits, a line naming ``--mono16-bit-depth``
    is appended to ``notes``. The two image topics read are appended to ``chosen``. A pair
    of two sizes, or of a grey image and a colour one, is DatasetError naming the topics and
    the stamp. A bag that had to be recovered, or whose mcap chunks were damaged (pairs
    lost), gets a line each in ``damage``.
    """
    if every < 1:
        raise DatasetError(f'every must be >= 1, got {every}')
    out = Path(out_dir)
    sync = make_synchronizer(2, 10, slop)
    written = matched = 0
    brightest: list[int] = []
    stamps: list[list[int]] = [[], []]
    first_error = ''
    with BagInput(bag_path) as bag:
        # Only the images: their camera_info topics are not needed (nor required) here.
        left_image, right_image = find_stereo_images(bag.topics, left_topic, right_topic)
        if chosen is not None:
            chosen += [left_image, right_image]
        inputs = {left_image: 0, right_image: 1}
        with tqdm(total=bag.message_count(left_image), desc='extract pairs',
                  unit='frame', disable=not progress) as bar:
            for connection, _, data in bag.messages():
                index = inputs.get(connection.topic)
                if index is None:
                    continue
                msg = bag.deserialize(data, connection)
                stamp = stamp_to_ns(msg.header.stamp)
                stamps[index].append(stamp)
                for left, right in sync.add(index, stamp, msg):
                    bar.update(1)
                    matched += 1
                    if (matched - 1) % every:
                        continue
                    try:
                        images = [stereo_input_from_message(m, bit_depth, brightest)
                                  for m in (left, right)]
                    except StereoDepthError as error:
                        first_error = first_error or str(error)
                        if skipped is not None:
                            when = stamp_to_ns(left.header.stamp) / 1e9
                            skipped.append(f'{error} (stamp {when:.6f})')
                        continue
                    _check_pair(images, (left, right), (left_image, right_image))
                    folder = out / f'{written:05d}'
                    folder.mkdir(parents=True, exist_ok=True)
                    for name, image in zip(('left.png', 'right.png'), images):
                        pixels = image if image.ndim == 2 else image[:, :, ::-1]
                        cv2.imwrite(str(folder / name), pixels)
                    written += 1
                    if written == limit:
                        break
                if written == limit:
                    break
        if damage is not None:
            damage += damage_lines(bag)
    note = narrow_16_bit_note(max(brightest), '--mono16-bit-depth',
                              'the brightest value of the pairs') if brightest else None
    if note is not None and notes is not None:
        notes.append(note)
    if written == 0:
        topics = (left_image, right_image)
        why = (never_matched(topics, stamps, slop) if not matched else
               f'{matched} pairs matched on {", ".join(topics)}, none could be decoded '
               f'(first: {first_error})')
        raise DatasetError(f'no stereo pair of {bag_path} could be extracted: {why}')
    return written


def damage_lines(bag: BagInput) -> list[str]:
    """Return a line on a bag read by recovery, and one on what its mcap chunks lost."""
    lines = []
    if bag.recovered_from:
        lines.append(f'recovered: {bag.recovered_from}')
    if bag.damage:
        lines.append(f'damaged, messages lost: {bag.damage}')
    return lines


def _check_pair(images: Sequence[np.ndarray], messages: Sequence[Any],
                topics: Sequence[str]) -> None:
    """Raise DatasetError naming the topics and the stamp unless the images make a pair.

    ``images`` are the decoded left and right messages (uint8 grey or RGB), a pair as
    :func:`~stereo_depth_ros.images.pair_mismatch` says: one size (pairs of two sizes cannot
    be labelled or cropped together: refused here, at the first pair, not once the whole bag
    is extracted), and both grey or both colour.
    """
    mismatch = pair_mismatch(images[0].shape, images[1].shape)
    if mismatch is not None:
        when = stamp_to_ns(messages[0].header.stamp) / 1e9
        labels = (image_label(messages[0]), image_label(messages[1]))
        raise DatasetError(mismatch.message((topics[0], topics[1]),
                                            f' (pair at stamp {when:.6f})', labels))
