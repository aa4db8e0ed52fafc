"""StereoPipeline: one pair in, disparity/depth/obstacle/pictures out, only what is asked."""

import dataclasses
import numpy as np
import pytest

from stereo_depth_ros.backends import create_backend
from stereo_depth_ros.backends.base import DisparityBackend
from stereo_depth_ros.camera import StereoCameraModel
from stereo_depth_ros.data.synthetic import EVAL_SEED_OFFSET, make_scene
from stereo_depth_ros.errors import CalibrationError, ImageFormatError
from stereo_depth_ros.evaluation.metrics import evaluate_pair
from stereo_depth_ros.geometry import DISPARITY_STEP
from stereo_depth_ros.obstacle import ObstacleParameters
from stereo_depth_ros.pipeline import StereoPipeline
from stereo_depth_ros.visualize import ColourScale, colorize_disparity


@pytest.fixture(scope='module')
def road():
    scene = make_scene(EVAL_SEED_OFFSET + 5, height=192, width=384, kind='road')
    assert scene.obstacle_distance < 10.0  # near enough for SGBM at this size
    return scene


@pytest.fixture(scope='module')
def pipeline():
    return StereoPipeline(create_backend('sgbm'))


def test_all_outputs_consistent(road, pipeline):
    result = pipeline.process(road.left, road.right, road.camera,
                              outputs={'depth', 'obstacle', 'color', 'points'})
    camera = road.camera
    valid = np.isfinite(result.disparity) & (result.disparity > camera.disparity_offset)
    expected = camera.focal_baseline / (result.disparity[valid] - camera.disparity_offset)
    np.testing.assert_allclose(result.depth[valid], expected, rtol=1e-5)
    assert np.isnan(result.depth[~valid]).all()
    assert result.color.shape == road.left.shape and result.color.dtype == np.uint8
    np.testing.assert_allclose(result.points[..., 2][valid], result.depth[valid])
    # x right, y down, from the left camera's pinhole model (REP 103 optical frame).
    rows, columns = np.nonzero(valid)
    z = result.depth[rows, columns]
    np.testing.assert_allclose(result.points[rows, columns, 0],
                               (columns - camera.cx_left) * z / camera.fx, rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(result.points[rows, columns, 1],
                               (rows - camera.cy) * z / camera.fy, rtol=1e-4, atol=1e-4)
    assert result.obstacle.found
    assert result.obstacle.distance == pytest.approx(road.obstacle_distance, rel=0.1)
    assert {'disparity_ms', 'total_ms'} <= set(result.timings)


def test_the_result_carries_the_settings_it_was_computed_with(road):
    params = ObstacleParameters(roi=(0.1, 0.2, 0.8, 0.6), min_range=0.5, max_range=30.0)
    pipeline = StereoPipeline(create_backend('sgbm', min_disparity=-16, disparity_range=64),
                              obstacle_params=params)
    result = pipeline.process(road.left, road.right, road.camera, outputs=set())
    assert (result.min_disparity, result.max_disparity) == (-16.0, 47.0)
    # The nearest depth -16..47 px can measure, if nearer than obstacle.min_range, is that.
    nearest = road.camera.focal_baseline / (47.0 - road.camera.disparity_offset)
    assert result.min_range == pytest.approx(max(0.5, nearest)) and result.max_range == 30.0
    assert result.obstacle_roi == (0.1, 0.2, 0.8, 0.6)
    # Both limits with a principal-point offset of 8 px: depth = f B / (d - 8).
    verged = dataclasses.replace(road.camera, cx_right=road.camera.cx_left - 8)
    shifted = StereoPipeline(create_backend('sgbm', min_disparity=16, disparity_range=48),
                             obstacle_params=params)
    fb = verged.focal_baseline
    assert shifted.obstacle_range_limits(verged) == pytest.approx((fb / (63 - 8), fb / (16 - 8)))
    assert shifted.obstacle_range_limits(None) == (0.5, 30.0)


def test_only_requested_outputs_are_computed(road, pipeline):
    result = pipeline.process(road.left, road.right, road.camera, outputs=set())
    assert result.depth is None and result.obstacle is None and result.color is None
    assert result.points is None and 'obstacle_ms' not in result.timings
    without_camera = pipeline.process(road.left, road.right)
    assert without_camera.depth is None and without_camera.color is not None
    with pytest.raises(ValueError, match='unknown pipeline outputs'):
        pipeline.process(road.left, road.right, road.camera, outputs={'normals'})


def test_sgbm_epe_on_synthetic_scenes_is_bounded(pipeline):
    errors = []
    for index in range(3):
        scene = make_scene(EVAL_SEED_OFFSET + index, height=192, width=384, kind='layered')
        errors.append(evaluate_pair(pipeline.process(scene.left, scene.right).disparity,
                                    scene.disparity)['epe'])
    assert np.mean(errors) < 6.0


def test_depth_range_marks_outside_as_rep117_does(road):
    full = StereoPipeline(create_backend('sgbm')).process(road.left, road.right, road.camera,
                                                          outputs={'depth'})
    low, high = np.nanpercentile(full.depth, [10, 90])
    limited = StereoPipeline(create_backend('sgbm'), min_depth=low, max_depth=high)
    result = limited.process(road.left, road.right, road.camera, outputs={'depth'})
    finite = result.depth[np.isfinite(result.depth)]
    assert finite.size and finite.min() >= low and finite.max() <= high
    with np.errstate(invalid='ignore'):
        near, far = full.depth < low, full.depth > high
    outside = near | far
    assert near.any() and far.any()
    # -inf "too close", +inf "nothing within range"; the disparity is unknown there.
    assert np.isneginf(result.depth[near]).all() and np.isposinf(result.depth[far]).all()
    assert np.isnan(result.disparity[outside]).all()
    assert np.isnan(result.depth[np.isnan(full.depth)]).all()  # unknown stays unknown
    inside = np.isfinite(full.depth) & ~outside
    np.testing.assert_array_equal(result.depth[inside], full.depth[inside])
    with pytest.raises(ValueError):
        StereoPipeline(create_backend('sgbm'), min_depth=5.0, max_depth=1.0)


def test_library_use_gets_the_node_s_meaning_and_clear_errors(road):
    # The node's 0.0 is "no limit" here too: every depth stays finite or unknown.
    sgbm = create_backend('sgbm')
    zero = StereoPipeline(sgbm, min_depth=0.0, max_depth=0.0).process(
        road.left, road.right, road.camera, outputs={'depth', 'points'})
    assert not np.isinf(zero.depth).any() and np.isfinite(zero.depth).mean() > 0.5
    # Points of depths outside the range have no position: NaN, never inf.
    ranged = StereoPipeline(sgbm, max_depth=10.0).process(road.left, road.right, road.camera,
                                                          outputs={'depth', 'points'})
    assert np.isposinf(ranged.depth).any() and not np.isinf(ranged.points).any()
    assert np.isnan(ranged.points[np.isposinf(ranged.depth)]).all()
    for limits, words in (({'max_depth': -5.0}, 'max_depth must be a number > 0 m'),
                          ({'min_depth': 50.0}, "not below the obstacle search's max_range"),
                          ({'min_depth': 5.0, 'max_depth': 1.0}, 'need min_depth < max_depth')):
        with pytest.raises(ValueError, match=words):
            StereoPipeline(sgbm, **limits)
    with pytest.raises(ValueError, match='obstacle ranges need'):
        StereoPipeline(sgbm, ObstacleParameters(min_range=50.0))
    with pytest.raises(ValueError, match=r"outputs must be a set of names, e.g. \{'depth'\}"):
        StereoPipeline(sgbm).process(road.left, road.right, road.camera, outputs='depth')
    with pytest.raises(ImageFormatError):
        StereoPipeline(sgbm).process(road.left.tolist(), road.right.tolist(), road.camera)


def test_depth_range_blanks_the_disparity_when_only_disparity_is_asked_for(road):
    limited = StereoPipeline(create_backend('sgbm'), max_depth=15.0)
    alone = limited.process(road.left, road.right, road.camera, outputs=set())
    with_depth = limited.process(road.left, road.right, road.camera, outputs={'depth'})
    unlimited = StereoPipeline(create_backend('sgbm')).process(road.left, road.right,
                                                               road.camera, outputs=set())
    far = np.isfinite(unlimited.disparity) & np.isnan(with_depth.disparity)
    assert far.any()  # max_depth blanks some pixels of this scene
    np.testing.assert_array_equal(alone.disparity, with_depth.disparity)
    colour = limited.process(road.left, road.right, road.camera, outputs={'color'})
    colour_with_depth = limited.process(road.left, road.right, road.camera,
                                        outputs={'color', 'depth'})
    np.testing.assert_array_equal(colour.color, colour_with_depth.color)


def test_calibration_size_mismatch(road, pipeline):
    other = StereoCameraModel.from_focal_baseline(500.0, 0.5, 640, 480)
    with pytest.raises(CalibrationError, match='CameraInfo says 640x480'):
        pipeline.process(road.left, road.right, other)


def test_colour_scale_steps_by_powers_of_two_within_the_range():
    scene = np.tile(np.linspace(0.0, 37.0, 100, dtype=np.float32), (10, 1))
    assert ColourScale().top(scene, 384.0) == 64.0  # 99th percentile ~36 px
    assert ColourScale().top(scene * 0.9, 384.0) == 64.0  # steady while within a factor of 2
    assert ColourScale().top(scene * 2.0, 384.0) == 128.0
    assert ColourScale().top(scene * 20.0, 384.0) == 384.0  # never beyond the backend's range
    assert ColourScale().top(scene * 0.01, 384.0) == 16.0  # a far scene: its noise stays blue
    assert ColourScale().top(np.full((4, 4), np.nan, np.float32), 384.0) == 16.0


@pytest.mark.parametrize('width, reach', [(100, 95.0), (128, 111.0), (129, 127.0)])
def test_on_a_narrow_pair_sgbm_claims_only_the_disparities_it_searched(width, reach):
    # OpenCV searches fewer disparities on a narrow image, in steps of 16: 96 of the 128
    # on a 100-px-wide one, so 95 px, not width - 1, is the largest it can give; the
    # DisparityImage, the Range's "too close" and the near guard start there.
    scene = make_scene(3, height=48, width=width, kind='layered', max_disparity=24)
    pipeline = StereoPipeline(create_backend('sgbm'))
    result = pipeline.process(scene.left, scene.right, scene.camera, outputs={'obstacle'})
    assert result.max_disparity == reach
    assert result.min_range == pytest.approx(scene.camera.focal_baseline / reach)
    assert pipeline.largest_disparity(width) == reach
    narrow = [note for note in result.notes if 'too narrow' in note]
    assert narrow == ([] if reach == 127.0 else [
        'the image is too narrow for the disparity range: sgbm reaches 127 px, but on a '
        f'{width}-px-wide pair only {reach:g} px; the DisparityImage, the depth limits and '
        'the Range use that'])


def test_a_wide_range_backend_paints_a_near_scene_in_its_whole_colour_scale(road):
    class WideRange(DisparityBackend):
        """sgbm's disparities reported with costnet's range (0-384 px)."""

        name = 'wide'
        min_disparity = 0.0
        max_disparity = 384.0

        def __init__(self) -> None:
            self.inner = create_backend('sgbm')

        def _compute(self, left, right):
            return self.inner.compute(left, right)

    pipeline = StereoPipeline(WideRange())
    result = pipeline.process(road.left, road.right, road.camera, outputs={'color'})
    assert result.max_disparity == 383.0  # on a 384-px-wide pair, no disparity is larger
    # The Range's "too close" starts where the largest disparity on this image ends.
    assert result.min_range == pytest.approx(road.camera.focal_baseline / 383.0)
    assert result.notes[0].startswith('the image is too narrow for the disparity range: wide '
                                      'reaches 384 px, but on a 384-px-wide pair only 383 px')
    # Said once per image width, not with every pair of a stream.
    assert pipeline.process(road.left, road.right, road.camera, outputs={'color'}).notes == []
    near = np.nanpercentile(result.disparity, 99)
    red_top = ColourScale().top(result.disparity, 383.0)
    assert near <= red_top < 2 * max(near, 16.0)
    assert np.array_equal(result.color, colorize_disparity(result.disparity,
                                                           max_disparity=red_top))


def test_a_stream_s_colour_scale_rises_at_once_and_falls_with_a_margin():
    def frame(robust_max):  # 99th percentile = robust_max (all pixels equal)
        return np.full((4, 4), robust_max, np.float32)

    assert ColourScale().top(frame(31.9), 384.0) == 32.0
    assert ColourScale().top(frame(32.1), 384.0) == 64.0  # one frame alone would flip
    assert ColourScale().top(frame(8.0), 10.0) == 10.0  # a range below 16 px is the top
    scale = ColourScale()
    tops = [scale.top(frame(value), 384.0) for value in (31.9, 32.1, 31.9, 32.1, 26.0, 25.0)]
    assert tops == [32.0, 64.0, 64.0, 64.0, 64.0, 32.0]  # down below 0.4 x 64 = 25.6 px
    assert scale.top(frame(200.0), 384.0) == 256.0  # up at once
    assert scale.top(frame(110.0), 128.0) == 128.0  # a smaller range caps what was kept


def test_the_far_limit_is_where_a_disparity_step_is_left():
    # An OAK-D Lite-like f B = 33.8 px m: nothing beyond f B / (1/16 px) = 541 m has a depth.
    camera = StereoCameraModel.from_focal_baseline(451.0, 0.075, 640, 480)
    wide = StereoPipeline(create_backend('sgbm'),
                          obstacle_params=ObstacleParameters(max_range=5000.0))
    assert wide.obstacle_range_limits(camera)[1] == pytest.approx(
        camera.focal_baseline / DISPARITY_STEP)
    near = StereoPipeline(create_backend('sgbm'),
                          obstacle_params=ObstacleParameters(max_range=40.0))
    assert near.obstacle_range_limits(camera)[1] == 40.0


def test_the_obstacle_picture_s_label_grows_with_the_image():
    # At 1080p a fixed 0.6 font was a few pixels of a 1920-px-wide picture.
    from stereo_depth_ros.visualize import overlay_obstacle

    def text_height(width: int, height: int) -> int:
        picture = overlay_obstacle(np.zeros((height, width, 3), np.uint8), None)
        rows = np.flatnonzero((picture == 255).all(axis=2).any(axis=1))
        return int(rows[-1] - rows[0] + 1)

    small, large = text_height(512, 256), text_height(1920, 1080)
    assert small == text_height(640, 480)  # up to 640 px as before
    assert large >= 2.5 * small


def test_the_obstacle_picture_s_label_is_outlined_so_it_shows_on_white():
    # White text on a light wall vanished: the label is white inside a dark outline.
    from stereo_depth_ros.visualize import overlay_obstacle
    picture = overlay_obstacle(np.full((120, 320, 3), 255, np.uint8), None)
    label = picture[:40, :160]
    assert (label.max(axis=2) < 60).sum() > 100  # the outline
    assert (label.min(axis=2) == 255).sum() > 0.5 * label.shape[0] * label.shape[1]


def test_a_camera_height_far_from_the_fitted_ground_is_said():
    # The road camera is about 1.5 m up; camera_height 0.8 m keeps the search off that
    # ground, and the pipeline passes the search's warning on, throttled by its kind.
    scene = make_scene(3, 256, 512, kind='road', max_disparity=64)
    notes = {}
    for height in (0.8, 1.5):
        pipeline = StereoPipeline(create_backend('sgbm'),
                                  obstacle_params=ObstacleParameters(camera_height=height))
        notes[height] = pipeline.process(scene.left, scene.right, scene.camera,
                                         outputs={'obstacle'}).notes
    assert len(notes[0.8]) == 1 and notes[0.8][0].startswith(
        'the ground does not fit obstacle.camera_height: a plane 1.53 m below the camera')
    assert notes[1.5] == []
    # 30 % low on another road scene: the search's fit keeps a plane tilted through the true
    # ground, within 25 % of 1.24 m, with 55 % of the points (the true one: 95 %); its
    # obstacle moved from 22.5 to 16.0 m. Said too.
    scene = make_scene(11, 375, 1242, kind='road')
    result = StereoPipeline(create_backend('sgbm'),
                            obstacle_params=ObstacleParameters(camera_height=1.24)).process(
        scene.left, scene.right, scene.camera, outputs={'obstacle'})
    assert [note[:60] for note in result.notes] == [
        'the ground does not fit obstacle.camera_height: a plane 1.77']


def test_a_depth_limit_under_a_centimetre_narrows_the_search_without_an_error():
    # The pipeline narrows obstacle.max_range to what it may see (max_depth here): the
    # narrowed setting is not a user's, and no limit of the node's parameter refuses it.
    scene = make_scene(EVAL_SEED_OFFSET + 3, height=96, width=192, max_disparity=40)
    pipeline = StereoPipeline(create_backend('sgbm'), ObstacleParameters(min_range=0.0),
                              max_depth=0.005)
    result = pipeline.process(scene.left, scene.right, scene.camera)
    assert result.max_range == pytest.approx(0.005)
    assert result.obstacle is not None and not result.obstacle.found


def test_a_depth_limit_equal_to_the_obstacle_search_s_far_end_is_refused():
    # min_depth at obstacle.max_range, or max_depth at obstacle.min_range, leaves the search
    # an empty interval of depth: refused as a limit beyond it is.
    sgbm = create_backend('sgbm')
    params = ObstacleParameters(min_range=0.5, max_range=20.0)
    with pytest.raises(ValueError, match="not below the obstacle search's max_range"):
        StereoPipeline(sgbm, params, min_depth=20.0)
    with pytest.raises(ValueError, match="not above the obstacle search's min_range"):
        StereoPipeline(sgbm, params, max_depth=0.5)
    StereoPipeline(sgbm, params, min_depth=19.9)  # just inside: accepted
    StereoPipeline(sgbm, params, max_depth=0.6)


def test_colours_mean_the_same_disparity_whatever_the_backend_s_range_starts_at(road):
    # The colour scale starts at 0 px for a backend that searches from 16 px: a disparity
    # has one colour for every backend, not the coldest one at each backend's own start.
    class FromSixteen(DisparityBackend):
        """Every pixel 16 px, from a backend whose range is 16-64 px."""

        name = 'from16'
        min_disparity = 16.0
        max_disparity = 64.0

        def _compute(self, left, right):
            return np.full(left.shape[:2], 16.0, np.float32)

    class FromZero(FromSixteen):
        """The same disparities from a backend whose range is 0-64 px."""

        name = 'from0'
        min_disparity = 0.0

    colours = [StereoPipeline(backend(), check_views=False).process(
        road.left, road.right, road.camera, outputs={'color'}).color
        for backend in (FromSixteen, FromZero)]
    assert np.array_equal(colours[0], colours[1])
    assert colours[0].any()  # 16 px of 64 is not the map's black-blue bottom


def test_disparity_pictures_are_rgb_near_red_far_blue_and_unknown_black():
    # A BGR picture or an unknown pixel in the map's colour would mislead whoever looks.
    picture = colorize_disparity(np.array([[0.0, 10.0, np.nan]], np.float32), 10.0)
    far, near, unknown = picture[0]
    assert far[2] > far[0] and near[0] > near[2]  # far blue, near red, in RGB order
    assert unknown.tolist() == [0, 0, 0]


def test_depth_pictures_paint_everything_beyond_max_depth_as_far():
    from stereo_depth_ros.visualize import colorize_depth
    picture = colorize_depth(np.array([[5.0, 40.0, 80.0, np.nan]], np.float32), max_depth=40.0)
    coldest = colorize_disparity(np.zeros((1, 1), np.float32), 1.0)[0, 0]
    assert picture[0, 1].tolist() == picture[0, 2].tolist() == coldest.tolist()
    assert picture[0, 0][0] > picture[0, 0][2]  # the nearest is red
    assert picture[0, 3].tolist() == [0, 0, 0]


def test_the_obstacle_picture_tints_outlines_and_boxes_the_obstacle(monkeypatch):
    from types import SimpleNamespace

    from stereo_depth_ros import visualize
    labels = []
    monkeypatch.setattr(visualize, 'draw_label',
                        lambda image, text, origin, font, thick: labels.append(text))
    mask = np.zeros((60, 80), bool)
    mask[30:50, 20:40] = True
    obstacle = SimpleNamespace(found=True, mask=mask, bbox=(10, 10, 60, 45), distance=12.34)
    picture = visualize.overlay_obstacle(np.full((60, 80, 3), 100, np.uint8), obstacle)
    assert labels == ['12.3 m']
    assert picture[40, 30].tolist() == [185, 67, 67]  # 45 % grey, 55 % red
    assert picture[0, 0].tolist() == [100, 100, 100]
    yellow = (picture == (255, 255, 0)).all(axis=2)
    assert yellow[30, 30] and yellow[40, 19] and yellow[49, 39]  # the mask's outline
    # The box's lines are centred on its edge pixels: as wide outside one side as the other.
    columns, rows = np.flatnonzero(yellow.any(axis=0)), np.flatnonzero(yellow.any(axis=1))
    assert 10 - columns[0] == columns[-1] - (10 + 60 - 1) >= 0
    assert 10 - rows[0] == rows[-1] - (10 + 45 - 1) >= 0
