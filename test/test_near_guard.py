"""The near guard: surfaces nearer than a backend measures reach the obstacle search."""

import dataclasses
import math

import cv2
import numpy as np
import pytest
from rosbags.typesys import get_typestore, Stores

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.camera import StereoCameraModel
from stereo_depth_ros.data.synthetic import make_scene
from stereo_depth_ros.msgs.obstacle import make_obstacle_range
from stereo_depth_ros.msgs.types import MessageTypes
from stereo_depth_ros.near_guard import (beyond_range_disparity, guard_plan,
                                         near_surface_disparity)
from stereo_depth_ros.obstacle import ObstacleParameters
from stereo_depth_ros.pipeline import StereoPipeline
from fake_backends import ConstantBackend

#: Road scenes of these seeds (not the validation or test seeds of the evaluations).
SEEDS = (11, 12, 13)


def _with_near_block(seed: int, disparity: int, column: int = 300) -> tuple:
    """A 512x256 road scene with a textured block at ``disparity`` px filling rows 60-255.

    The block spans 120 columns from ``column`` in the left view.
    """
    scene = make_scene(seed, height=256, width=512, kind='road')
    texture = cv2.resize(np.random.default_rng(7).integers(0, 256, (98, 60), dtype=np.uint8),
                         (120, 196), interpolation=cv2.INTER_NEAREST)[:, :, None]
    left, right = scene.left.copy(), scene.right.copy()
    left[60:, column:column + 120] = texture
    right[60:, column - disparity:column + 120 - disparity] = texture
    return scene, left, right


def test_the_search_is_planned_only_where_there_is_room_beyond_the_range() -> None:
    assert guard_plan(512, 256, 127.0) == (4, 64)  # sgbm on a small KITTI-like camera
    assert guard_plan(1248, 384, 127.0) == (4, 64)  # 0-254 px, on a 312x96 pair
    assert guard_plan(1248, 384, 384.0) == (8, 96)  # a learned backend with its near pass
    assert guard_plan(3840, 2160, 127.0) == (8, 32)  # 4K: shrunk as far as it goes (1-8 ms)
    assert guard_plan(512, 256, 384.0) is None  # 3/4 of the width is inside the range
    assert guard_plan(512, 40, 127.0) is None  # 10 rows at a quarter: nothing to match
    assert guard_plan(512, 95, 127.0) is None and guard_plan(512, 96, 127.0) == (4, 64)
    assert guard_plan(512, 256, 0.0) is None and guard_plan(512, 256, math.inf) is None


def far_reader() -> ConstantBackend:
    """A backend of range 0-127 px that reads everything 20 px, as a network beyond its range."""
    return ConstantBackend(20.0, 127.0, 'far_reader')


@pytest.mark.parametrize('disparity', [150, 200, 240])
def test_a_surface_beyond_the_range_gets_its_disparity(disparity: int) -> None:
    scene, left, right = _with_near_block(SEEDS[0], disparity)
    near = beyond_range_disparity(left, right, 127.0)
    assert near is not None
    block = near[70:, 310:410]
    assert np.isfinite(block).mean() > 0.9
    assert np.nanmedian(block) == pytest.approx(disparity, rel=0.03)
    # Nothing far from the block: the rest of the road scene is within sgbm's range.
    far_away = np.isfinite(near).copy()
    far_away[:, 240:440] = False
    assert far_away.sum() == 0


@pytest.mark.parametrize('seed', SEEDS)
def test_a_block_too_near_for_sgbm_is_reported_too_close(seed: int) -> None:
    scene, left, right = _with_near_block(seed, 200)
    backend = create_backend('sgbm')
    guarded = StereoPipeline(backend).process(left, right, scene.camera, outputs={'obstacle'})
    blind = StereoPipeline(backend, obstacle_params=ObstacleParameters(near_guard=False)) \
        .process(left, right, scene.camera, outputs={'obstacle'})
    true = scene.camera.focal_baseline / 200
    assert guarded.obstacle.distance == pytest.approx(true, rel=0.05)
    assert guarded.obstacle.mask[70:, 310:410].mean() > 0.9
    assert guarded.timings['near_guard_ms'] > 0
    types = MessageTypes.from_typestore(get_typestore(Stores.ROS2_JAZZY))
    header = types.Header(stamp=types.Time(sec=1, nanosec=0), frame_id='cam')
    message = make_obstacle_range(guarded.obstacle.distance, header, types,
                                  guarded.min_range, guarded.max_range)
    assert message.range == -math.inf  # REP 117: too close to range
    # Without the guard the block is holes: nothing, or a farther obstacle.
    assert not blind.obstacle.distance < blind.min_range


def test_scenes_with_nothing_beyond_the_range_are_unchanged() -> None:
    backend = create_backend('sgbm')
    guarded = StereoPipeline(backend)
    blind = StereoPipeline(backend, obstacle_params=ObstacleParameters(near_guard=False))
    for seed in SEEDS:
        scene = make_scene(seed, height=256, width=512, kind='road')
        a = guarded.process(scene.left, scene.right, scene.camera, outputs={'obstacle'})
        b = blind.process(scene.left, scene.right, scene.camera, outputs={'obstacle'})
        assert a.obstacle.distance == b.obstacle.distance
        assert np.array_equal(a.obstacle.mask, b.obstacle.mask)


def test_a_search_that_sees_no_depth_is_warned_about_and_its_range_stays_valid() -> None:
    # sgbm's 127 px are 1.31 m on this camera: a 1 m obstacle search sees nothing.
    scene = make_scene(SEEDS[0], height=256, width=512, kind='road')
    pipeline = StereoPipeline(create_backend('sgbm'),
                              obstacle_params=ObstacleParameters(max_range=1.0))
    result = pipeline.process(scene.left, scene.right, scene.camera, outputs={'obstacle'})
    assert result.min_range > result.max_range == 1.0
    assert len(result.notes) == 1
    assert result.notes[0].startswith('the obstacle search sees no depth with this camera')
    types = MessageTypes.from_typestore(get_typestore(Stores.ROS2_JAZZY))
    header = types.Header(stamp=types.Time(sec=1, nanosec=0), frame_id='cam')
    message = make_obstacle_range(result.obstacle.distance, header, types, result.min_range,
                                  result.max_range)
    assert math.isnan(message.range)  # no valid reading, not "nothing within range"
    assert message.min_range == message.max_range == pytest.approx(result.min_range)
    # What the guard finds nearer still (a block at 0.83 m) is too close, as ever.
    _, left, right = _with_near_block(SEEDS[0], 200)
    near = pipeline.process(left, right, scene.camera, outputs={'obstacle'})
    too_close = make_obstacle_range(near.obstacle.distance, header, types, near.min_range,
                                    near.max_range)
    assert too_close.range == -math.inf
    # A search that sees depth has no note.
    seeing = StereoPipeline(create_backend('sgbm')).process(scene.left, scene.right,
                                                            scene.camera, outputs={'obstacle'})
    assert seeing.notes == []


def test_a_surface_within_the_range_is_left_to_the_backend() -> None:
    # 126 px is sgbm's to measure: the coarse search, a coarse pixel (4 px) coarse, keeps one
    # coarse pixel beyond the range (without that margin it claimed 4 % of this pair).
    _, left, right = _with_near_block(SEEDS[0], 126)
    near = beyond_range_disparity(left, right, 127.0)
    assert near is None or not np.isfinite(near).any()


def test_every_too_near_surface_the_search_accepts_is_marked_not_only_the_nearest() -> None:
    # Two blocks beyond the range, at 200 px (0.83 m) and 160 px (1.04 m): a network reading
    # both 8 m away would leave the second in the cloud for a costmap to clear through.
    scene, left, right = _with_near_block(SEEDS[0], 200, column=300)
    texture = cv2.resize(np.random.default_rng(8).integers(0, 256, (98, 40), dtype=np.uint8),
                         (80, 196), interpolation=cv2.INTER_NEAREST)[:, :, None]
    left[60:, 430:510] = texture
    right[60:, 270:350] = texture
    result = StereoPipeline(far_reader()).process(left, right, scene.camera,
                                                  outputs={'depth', 'obstacle'})
    fb = scene.camera.focal_baseline
    assert result.obstacle.distance == pytest.approx(fb / 200, rel=0.05)
    assert (result.depth[70:, 310:410] == -np.inf).mean() > 0.9
    assert (result.depth[70:, 440:500] == -np.inf).mean() > 0.9


def test_a_near_wall_on_a_drone_camera_is_sized_from_the_nearest_depth_measured() -> None:
    # 752x480, fx 458 px, B 0.11 m: sgbm measures down to 0.397 m. A wall at 0.265 m over
    # the top 80 % of the view (three quarters of it matchable, x >= d) was sized from
    # min_range 0.3 m, failed min_size, and the Range said "nothing within range".
    scene = make_scene(1, 480, 752, 'road', max_disparity=48)
    camera = StereoCameraModel.from_focal_baseline(458.0, 0.11, 752, 480)
    disparity, rows = 190, 384
    noise = np.random.default_rng(5).integers(0, 256, (rows // 3, 314), dtype=np.uint8)
    texture = cv2.resize(noise, (752 + disparity, rows),
                         interpolation=cv2.INTER_NEAREST)[:, :, None]
    left, right = scene.left.copy(), scene.right.copy()
    left[:rows] = texture[:, :752]
    right[:rows] = texture[:, disparity:]
    result = StereoPipeline(create_backend('sgbm')).process(left, right, camera,
                                                            outputs={'depth', 'obstacle'})
    assert result.obstacle.distance == pytest.approx(camera.focal_baseline / disparity,
                                                     rel=0.03)
    assert result.obstacle.distance < result.min_range  # Range: -inf
    assert (result.depth[:rows, disparity:] == -np.inf).mean() > 0.9


def test_min_depth_does_not_make_small_measured_blobs_large() -> None:
    # Only surfaces nearer than the backend measures are sized from its nearest depth; a
    # 30x30 px blob the backend measures at 1 m (0.02 m^2) stays too small with min_depth
    # 2.2 m (sized from there it would pass min_size 0.1 m^2). The views are blank: the
    # reader's numbers are taken as they come (check_views off).
    class BlobReader(ConstantBackend):
        def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
            disparity = np.full(left.shape[:2], 10.0, np.float32)  # a wall 10 m away
            disparity[100:130, 100:130] = 100.0  # f B = 100 px m: 1 m
            return disparity

    camera = StereoCameraModel.from_focal_baseline(200.0, 0.5, 256, 256)
    pair = np.zeros((256, 256), np.uint8)
    params = ObstacleParameters(max_clearance=None, near_guard=False)
    reader = BlobReader(0.0, 127.0, 'blob_reader')
    result = StereoPipeline(reader, obstacle_params=params, min_depth=2.2,
                            check_views=False).process(pair, pair, camera, outputs={'obstacle'})
    assert result.obstacle.distance == pytest.approx(10.0, rel=0.01)


def test_the_ground_is_fitted_on_the_backend_s_depth_alone() -> None:
    # The block stands on the road rows the plane is fitted on; its coarse finds (sgbm has
    # holes there) must not enter the fit.
    scene, left, right = _with_near_block(SEEDS[0], 200)
    backend = create_backend('sgbm')
    guarded = StereoPipeline(backend).process(left, right, scene.camera, outputs={'obstacle'})
    blind = StereoPipeline(backend, obstacle_params=ObstacleParameters(near_guard=False)) \
        .process(left, right, scene.camera, outputs={'obstacle'})
    assert guarded.obstacle.ground_plane is not None
    assert guarded.obstacle.ground_plane == blind.obstacle.ground_plane


def test_a_block_in_the_left_half_is_found_too() -> None:
    # The coarse search pads the views on the left: OpenCV gives nothing for the columns
    # left of its range's width (here 256 of 512 px, where the block starts at 160).
    _, left, right = _with_near_block(SEEDS[0], 150, column=160)
    near = beyond_range_disparity(left, right, 127.0)
    assert near is not None
    assert np.isfinite(near[70:, 170:270]).mean() > 0.9


def test_the_depth_follows_the_offset_between_the_principal_points() -> None:
    scene, left, right = _with_near_block(SEEDS[0], 200)
    camera = dataclasses.replace(scene.camera, cx_right=scene.camera.cx_left - 10.0)
    result = StereoPipeline(create_backend('sgbm')).process(left, right, camera,
                                                            outputs={'obstacle'})
    assert result.obstacle.distance == pytest.approx(camera.focal_baseline / 190.0, rel=0.05)


def test_a_block_too_near_is_published_too_near_not_as_holes_or_a_farther_surface() -> None:
    # sgbm leaves the block at 200 px (beyond its 127) as holes; a network beyond its range
    # reads it farther (here 20 px, 8 m), a point cloud then holds a surface that is not
    # there and a costmap clears through the block. The obstacle's pixels become depth -inf
    # (REP 117: too close, as its Range says), disparity and points unknown; the rest is the
    # backend's.
    scene, left, right = _with_near_block(SEEDS[0], 200)
    wanted = {'depth', 'points', 'obstacle'}
    for backend in (create_backend('sgbm'), far_reader()):
        guarded = StereoPipeline(backend).process(left, right, scene.camera, outputs=wanted)
        # Without the guard's finds far_reader's 20 px everywhere fails the view check; the
        # comparison is of what the guard marks, so the check is off there.
        blind = StereoPipeline(backend, obstacle_params=ObstacleParameters(near_guard=False),
                               check_views=False).process(left, right, scene.camera,
                                                          outputs=wanted)
        block = (slice(70, None), slice(310, 410))
        assert (guarded.depth[block] == -np.inf).mean() > 0.9, backend.name
        assert np.isnan(guarded.disparity[block]).mean() > 0.9
        assert np.isnan(guarded.points[block]).all(axis=-1).mean() > 0.9
        assert guarded.obstacle.distance == pytest.approx(scene.camera.focal_baseline / 200,
                                                          rel=0.05)
        assert not (blind.depth[block] == -np.inf).any()
        marked = guarded.depth == -np.inf
        assert not marked[:60].any() and not marked[:, :240].any()  # nothing off the block
        np.testing.assert_array_equal(guarded.depth[~marked], blind.depth[~marked])
        np.testing.assert_array_equal(guarded.disparity[~marked], blind.disparity[~marked])
    # A disparity image alone, from which a consumer may make its own cloud, is marked too.
    shown = StereoPipeline(far_reader()).process(left, right, scene.camera, outputs={'color'})
    assert np.isnan(shown.disparity[block]).mean() > 0.9
    # A point cloud alone (a costmap's usual subscription) is marked too: the obstacle search
    # runs for the guard's finds, and only what it keeps is marked.
    alone = StereoPipeline(far_reader()).process(left, right, scene.camera, outputs={'points'})
    assert alone.obstacle is None and alone.depth is None
    assert np.isnan(alone.points[block]).all(axis=-1).mean() > 0.9
    assert np.isfinite(alone.points[:60]).all()


def test_a_repeating_texture_the_backend_matched_is_left_alone() -> None:
    # A facade with a 170-px repeating pattern 30 px away: the coarse search also matches it
    # one period further (200 px, 0.8 m), where sgbm measured it right. Without the check
    # against the backend's estimate, one such facade gave Range -inf.
    scene = make_scene(SEEDS[0], height=256, width=512, kind='road', obstacles=0)
    period = 170
    tile = cv2.resize(np.random.default_rng(period).integers(0, 256, (64, period // 2),
                                                             dtype=np.uint8),
                      (period, 256), interpolation=cv2.INTER_CUBIC)
    wall = np.tile(tile, (1, 2048 // period + 2))
    rows = np.nanmedian(scene.disparity, axis=1) < 30
    left, right = scene.left.copy(), scene.right.copy()
    for image, shift in ((left, 0), (right, 30)):
        image[rows] = wall[:, 200 + shift:712 + shift][rows][:, :, None]
    raw = beyond_range_disparity(left, right, 127.0)
    assert raw is not None and np.isfinite(raw).mean() > 0.2  # the coarse search alone is fooled
    backend = create_backend('sgbm')
    guarded = StereoPipeline(backend).process(left, right, scene.camera,
                                              outputs={'obstacle', 'depth'})
    blind = StereoPipeline(backend, obstacle_params=ObstacleParameters(near_guard=False)) \
        .process(left, right, scene.camera, outputs={'obstacle', 'depth'})
    assert guarded.obstacle.distance == blind.obstacle.distance > guarded.min_range
    # The published depth is the backend's, guard or not.
    np.testing.assert_array_equal(guarded.depth, blind.depth)


def test_no_find_has_its_match_in_the_padding() -> None:
    # Left of x = d a match would lie in the replicated edge pixels left of the right view:
    # no surface. On this layered scene (0-64 px, nothing beyond sgbm's range) the coarse
    # search matched 864 such pixels before they were dropped.
    scene = make_scene(1008, 256, 512, 'layered', max_disparity=64.0)
    found = beyond_range_disparity(scene.left, scene.right, 127.0)
    assert found is not None and not np.isfinite(found).any()


def test_the_usual_frame_makes_no_map_and_costs_a_point_cloud_no_obstacle_search() -> None:
    # Nothing beyond sgbm's range on a road scene, and no search on a pair without room beyond
    # the range: no full-size map, or a point cloud subscriber's every frame would also pay
    # for an obstacle search run only for the guard's (empty) finds.
    scene = make_scene(SEEDS[0], height=256, width=512, kind='road')
    assert near_surface_disparity(scene.left, scene.right, 127.0) is None
    assert near_surface_disparity(scene.left, scene.right, 384.0) is None  # 3/4 width < 384
    result = StereoPipeline(create_backend('sgbm')).process(scene.left, scene.right,
                                                            scene.camera, outputs={'points'})
    assert 'near_guard_ms' in result.timings and 'obstacle_ms' not in result.timings


def test_a_surface_one_coarse_pixel_beyond_the_range_is_left_to_the_backend() -> None:
    # A backend measuring up to 124 px: on the 4x smaller pair the coarse search cannot tell
    # 128 px (32 coarse px, exactly one coarse pixel beyond) from the range's own last
    # disparities, so it is not claimed; 132 px (two coarse pixels beyond) is.
    assert guard_plan(512, 256, 124.0) == (4, 64)
    _, left, right = _with_near_block(SEEDS[0], 128)
    near = beyond_range_disparity(left, right, 124.0)
    assert near is None or np.isfinite(near[70:, 310:410]).mean() < 0.05
    _, left, right = _with_near_block(SEEDS[0], 132)
    assert np.isfinite(beyond_range_disparity(left, right, 124.0)[70:, 310:410]).mean() > 0.9


def test_a_find_where_the_backend_has_no_estimate_needs_no_confirmation() -> None:
    # A near wall (200 px, 0.8 m) shaded from top to bottom with faint texture, which the
    # backend leaves as holes (NaN), as sgbm does beyond its range. Its windows correlate
    # with the right view at any shift along the row, so a comparison with an "estimate" of
    # 0 px where the backend has none dropped 99.9 % of the wall.
    scene = make_scene(SEEDS[0], height=256, width=512, kind='road')
    disparity, rows = 200, 192
    faint = np.random.default_rng(3).integers(-2, 3, (rows // 4, (512 + disparity) // 4))
    faint = cv2.resize(faint.astype(np.float32), (512 + disparity, rows),
                       interpolation=cv2.INTER_NEAREST)
    shading = np.linspace(30, 220, rows, dtype=np.float32)[:, None]
    wall = np.clip(shading + faint, 0, 255).astype(np.uint8)[:, :, None]
    left, right = scene.left.copy(), scene.right.copy()
    left[:rows], right[:rows] = wall[:, :512], wall[:, disparity:disparity + 512]
    holes = np.full((256, 512), np.nan, np.float32)
    found = beyond_range_disparity(left, right, 127.0, holes)
    matchable = (slice(0, rows), slice(disparity, None))  # x >= d
    assert np.isfinite(found[matchable]).mean() > 0.9
    assert np.nanmedian(found) == pytest.approx(disparity, rel=0.02)
    # No estimate is no estimate: the finds are those made without the backend's map.
    np.testing.assert_array_equal(found, beyond_range_disparity(left, right, 127.0))


def test_a_backend_estimate_that_matches_only_a_flat_view_does_not_hide_a_find() -> None:
    # A network beyond its range reads the near block 20 px, where the right view holds
    # only a blank wall: nothing confirms its estimate (a flat window costs 1, no match), so
    # the guard's well matched find at 200 px is kept.
    _, left, right = _with_near_block(SEEDS[0], 200)
    right[60:, 240:] = 128
    theirs = np.full(left.shape[:2], 20.0, np.float32)
    near = beyond_range_disparity(left, right, 127.0, theirs)
    assert near is not None
    block = near[70:, 310:410]
    assert np.isfinite(block).mean() > 0.9
    assert np.nanmedian(block) == pytest.approx(200, rel=0.03)
