"""Dataset readers: PFM round trip, Middlebury 2003 sample, KITTI and generic layouts."""

import cv2
import numpy as np
import pytest

from stereo_depth_ros.data.datasets import load_dataset, parse_seed_spec
from stereo_depth_ros.data.pfm import read_pfm, write_pfm
from stereo_depth_ros.errors import DatasetError
from stereo_depth_ros.resources import sample_data_dir


def test_pfm_round_trip(tmp_path):
    image = np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5
    write_pfm(tmp_path / 'd.pfm', image)
    np.testing.assert_array_equal(read_pfm(tmp_path / 'd.pfm'), image)
    (tmp_path / 'bad.pfm').write_bytes(b'P6\n1 1\n255\n\x00\x00\x00')
    with pytest.raises(DatasetError, match='not a PFM'):
        read_pfm(tmp_path / 'bad.pfm')


def test_middlebury_sample_scaled_by_four():
    samples = load_dataset('middlebury2003', sample_data_dir() / 'middlebury2003')
    assert [s.name for s in samples] == ['cones', 'teddy']
    cones = samples[0]
    assert cones.left.shape == (375, 450, 3) and cones.right.shape == (375, 450, 3)
    raw = cv2.imread(str(sample_data_dir() / 'middlebury2003/cones/disp2.pgm'),
                     cv2.IMREAD_UNCHANGED)
    known = raw > 0
    np.testing.assert_allclose(cones.disparity[known], raw[known] / 4.0)
    assert np.isnan(cones.disparity[~known]).all()
    assert 50 < np.nanmax(cones.disparity) < 64


def test_kitti_layout(tmp_path):
    for folder in ('image_2', 'image_3', 'disp_occ_0'):
        (tmp_path / folder).mkdir()
    image = np.full((10, 20, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / 'image_2/000000_10.png'), image)
    cv2.imwrite(str(tmp_path / 'image_3/000000_10.png'), image)
    disparity = np.zeros((10, 20), np.uint16)
    disparity[2, 3] = 256 * 12 + 128
    cv2.imwrite(str(tmp_path / 'disp_occ_0/000000_10.png'), disparity)
    sample = load_dataset('kitti2015', tmp_path)[0]
    assert sample.disparity[2, 3] == pytest.approx(12.5)
    assert np.isnan(sample.disparity).sum() == 199
    (tmp_path / 'image_3/000000_10.png').unlink()
    with pytest.raises(DatasetError, match='missing'):
        load_dataset('kitti2015', tmp_path)


def test_generic_layout_and_incomplete_scene(tmp_path):
    scene = tmp_path / 'a'
    scene.mkdir()
    image = np.zeros((8, 12, 3), np.uint8)
    cv2.imwrite(str(scene / 'left.png'), image)
    cv2.imwrite(str(scene / 'right.png'), image)
    disparity = np.full((8, 12), 3.0, np.float32)
    disparity[0, 0] = np.inf
    write_pfm(scene / 'disp.pfm', disparity)
    sample = load_dataset('generic', tmp_path)[0]
    assert np.isnan(sample.disparity[0, 0]) and sample.disparity[1, 1] == 3.0
    (scene / 'right.png').unlink()
    with pytest.raises(DatasetError, match='incomplete'):
        load_dataset('generic', tmp_path)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match='not a folder'):
        load_dataset('middlebury2003', tmp_path / 'nope')
    with pytest.raises(DatasetError, match='unknown dataset kind'):
        load_dataset('eth3d', tmp_path)
    with pytest.raises(DatasetError, match='seeds like'):
        parse_seed_spec('abc')


def test_seed_specs():
    assert parse_seed_spec('3:6') == [3, 4, 5]
    assert parse_seed_spec('7,9') == [7, 9]
    held_out = parse_seed_spec('eval:2')
    assert len(held_out) == 2 and held_out[0] >= 1_000_000


def test_synthetic_dataset_scene_kind():
    road = load_dataset('synthetic', 'eval:1', scene_kind='road', height=64, width=128)[0]
    assert road.name.startswith('road_') and road.left.shape == (64, 128, 3)
    assert np.isfinite(road.disparity).all()
