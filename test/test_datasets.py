"""Dataset readers: PFM round trip, Middlebury 2003 sample, KITTI and generic layouts."""

import cv2
import numpy as np
import pytest

from stereo_depth_ros.data.datasets import load_dataset, parse_seed_spec, read_disparity_file
from stereo_depth_ros.data.pfm import read_pfm
from stereo_depth_ros.errors import DatasetError
from stereo_depth_ros.resources import sample_data_dir


TOP_FIRST = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, np.inf]], np.float32)


def hand_made_pfm(header, rows_top_first, scale, byte_order):
    """PFM bytes written by hand from the format: rows bottom first, colour RGB."""
    height, width = rows_top_first.shape[:2]
    return (header + f'\n{width} {height}\n{scale}\n'.encode()
            + np.flipud(rows_top_first).astype(byte_order + 'f4').tobytes())


@pytest.mark.parametrize('scale, byte_order', [('-1.0', '<'), ('1.0', '>'), ('-1', '<')])
def test_pfm_read_against_hand_made_bytes(tmp_path, scale, byte_order):
    (tmp_path / 'd.pfm').write_bytes(hand_made_pfm(b'Pf', TOP_FIRST, scale, byte_order))
    image = read_pfm(tmp_path / 'd.pfm')
    assert image.dtype == np.float32 and image.shape == (2, 3)
    np.testing.assert_array_equal(image, TOP_FIRST)  # top row first, NaN and inf kept


def test_pfm_colour_keeps_the_files_channel_order(tmp_path):
    rgb = np.arange(18, dtype=np.float32).reshape(2, 3, 3)
    (tmp_path / 'c.pfm').write_bytes(hand_made_pfm(b'PF', rgb, '-1', '<'))
    np.testing.assert_array_equal(read_pfm(tmp_path / 'c.pfm'), rgb)


def test_pfm_scale_magnitude_is_not_applied(tmp_path):
    (tmp_path / 's.pfm').write_bytes(hand_made_pfm(b'Pf', TOP_FIRST, '-2.5', '<'))
    np.testing.assert_allclose(read_pfm(tmp_path / 's.pfm'), TOP_FIRST, rtol=1e-6)


def test_opencv_writes_the_pfm_the_reader_reads(tmp_path):
    """Tests and tools write PFM with OpenCV: check its bytes against the format."""
    assert cv2.imwrite(str(tmp_path / 'w.pfm'), TOP_FIRST)
    assert (tmp_path / 'w.pfm').read_bytes() == hand_made_pfm(b'Pf', TOP_FIRST, '-1', '<')
    rgb = np.arange(18, dtype=np.float32).reshape(2, 3, 3)
    assert cv2.imwrite(str(tmp_path / 'c.pfm'), rgb[..., ::-1])  # OpenCV takes BGR
    assert (tmp_path / 'c.pfm').read_bytes() == hand_made_pfm(b'PF', rgb, '-1', '<')
    np.testing.assert_array_equal(read_pfm(tmp_path / 'c.pfm'), rgb)


@pytest.mark.parametrize('data, words', [
    (b'P6\n1 1\n255\n\x00\x00\x00', 'not a PFM'),
    (b'Pf\n2 2\n-1\n' + bytes(12), 'truncated PFM .3 of 4 values'),
    (b'Pf\n2\n-1\n' + bytes(16), 'cannot read PFM'),
    (b'Pf\n0 2\n-1\n', 'size must be positive'),
    (b'Pf\n2 2\n0\n' + bytes(16), 'finite non-zero'),
])
def test_bad_pfm_is_a_clear_error(tmp_path, data, words):
    (tmp_path / 'bad.pfm').write_bytes(data)
    with pytest.raises(DatasetError, match=words):
        read_pfm(tmp_path / 'bad.pfm')


def test_ground_truth_files_are_read_at_their_formats_scales(tmp_path):
    # Hand-made files, held-out scenes aside: Middlebury 2003 .pgm is disparity x 4, KITTI's
    # 16-bit .png disparity x 256, and 0 is unknown in both.
    cv2.imwrite(str(tmp_path / 'disp.pgm'), np.array([[0, 4, 255]], np.uint8))
    np.testing.assert_array_equal(read_disparity_file(tmp_path / 'disp.pgm'),
                                  [[np.nan, 1.0, 63.75]])
    cv2.imwrite(str(tmp_path / 'disp.png'), np.array([[0, 256, 65535]], np.uint16))
    np.testing.assert_array_equal(read_disparity_file(tmp_path / 'disp.png'),
                                  [[np.nan, 1.0, 65535 / 256]])


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


def test_datasets_are_sequences_slices_included():
    samples = load_dataset('middlebury2003', sample_data_dir() / 'middlebury2003')
    assert [s.name for s in samples[1:]] == ['teddy'] and samples[-1].name == 'teddy'
    assert samples[5:] == []
    synthetic = load_dataset('synthetic', '3:6', height=32, width=128)
    assert [s.name for s in synthetic[::2]] == ['layered_3', 'layered_5']
    with pytest.raises(IndexError):
        synthetic[3]


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
    cv2.imwrite(str(scene / 'disp.pfm'), disparity)
    sample = load_dataset('generic', tmp_path)[0]
    assert np.isnan(sample.disparity[0, 0]) and sample.disparity[1, 1] == 3.0
    cv2.imwrite(str(scene / 'disp.pfm'), disparity[::2, ::2])  # half size: named, not scored
    with pytest.raises(DatasetError, match=r'a/disp\.pfm is 6x4 but left\.png is 12x8'):
        load_dataset('generic', tmp_path)[0]
    cv2.imwrite(str(scene / 'disp.pfm'), np.ones((12, 8), np.float32))  # as many pixels
    with pytest.raises(DatasetError, match=r'a/disp\.pfm is 8x12 but left\.png is 12x8'):
        load_dataset('generic', tmp_path)[0]
    cv2.imwrite(str(scene / 'disp.pfm'), disparity)
    cv2.imwrite(str(scene / 'right.png'), image[:, :10])  # the scene is named, not only sizes
    with pytest.raises(DatasetError, match=r'a/right\.png is 10x8 but left\.png is 12x8'):
        load_dataset('generic', tmp_path)[0]
    (scene / 'right.png').unlink()
    with pytest.raises(DatasetError, match='incomplete'):
        load_dataset('generic', tmp_path)


def test_middlebury2014_and_eth3d_layout(tmp_path):
    # As MiddEval3 and ETH3D two-view unpack (disp0GT.pfm), and the full Middlebury 2014
    # scenes (disp0.pfm); disp0GT.pfm wins where both exist.
    image = np.zeros((8, 12, 3), np.uint8)
    for name, truth, value in (('eth3d_scene', 'disp0GT.pfm', 3.0),
                               ('mb2014_scene', 'disp0.pfm', 5.0)):
        scene = tmp_path / name
        scene.mkdir()
        cv2.imwrite(str(scene / 'im0.png'), image)
        cv2.imwrite(str(scene / 'im1.png'), image + 1)
        disparity = np.full((8, 12), value, np.float32)
        disparity[0, 0] = np.inf
        cv2.imwrite(str(scene / truth), disparity)
    cv2.imwrite(str(tmp_path / 'eth3d_scene' / 'disp0.pfm'), np.ones((8, 12), np.float32))
    (tmp_path / 'calibrations').mkdir()  # a folder without the files is not a scene
    samples = load_dataset('middlebury2014', tmp_path)
    assert [s.name for s in samples] == ['eth3d_scene', 'mb2014_scene']
    assert [s.disparity[1, 1] for s in samples] == [3.0, 5.0]
    assert np.isnan(samples[0].disparity[0, 0]) and samples[1].right[0, 0, 0] == 1
    (tmp_path / 'mb2014_scene' / 'disp0.pfm').unlink()
    with pytest.raises(DatasetError, match='mb2014_scene is incomplete: missing '
                                           'disp0GT.pfm or disp0.pfm'):
        load_dataset('middlebury2014', tmp_path)
    with pytest.raises(DatasetError, match='no middlebury2014 scenes'):
        load_dataset('middlebury2014', tmp_path / 'calibrations')


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


def test_an_install_s_site_packages_is_not_taken_for_the_checkout(tmp_path, monkeypatch):
    # Another package's models/ beside ours in site-packages is not ours; a checkout is known
    # by its package.xml.
    from stereo_depth_ros import resources
    site = tmp_path / 'lib' / 'python3.12' / 'site-packages'
    (site / 'stereo_depth_ros').mkdir(parents=True)
    (site / 'models').mkdir()
    monkeypatch.setattr(resources, '_PACKAGE_DIR', site / 'stereo_depth_ros')
    monkeypatch.delenv('STEREO_DEPTH_ROS_SHARE', raising=False)
    assert site not in resources.share_dirs()
    (site / 'package.xml').write_text('<package/>')
    assert resources.share_dirs()[0] == site


def _png_16_bit_grey_alpha(path, grey: np.ndarray) -> None:
    """Write ``grey`` (uint16) as a 16-bit grey PNG with an opaque alpha (colour type 4)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF))

    height, width = grey.shape
    pixels = np.dstack([grey, np.full_like(grey, 65535)]).astype('>u2')
    rows = b''.join(b'\x00' + row.tobytes() for row in pixels.reshape(height, -1))
    path.write_bytes(b'\x89PNG\r\n\x1a\n'
                     + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 16, 4, 0, 0, 0))
                     + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


def test_a_12_bit_image_with_an_opaque_alpha_is_still_named_narrow(tmp_path):
    # The alpha (65535) is dropped before the brightest value is looked at: a 12-bit grey
    # or colour image stored over 16 bits with alpha gets the --mono16-bit-depth line.
    from stereo_depth_ros.data.datasets import read_image_as_stored
    grey = (np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 17).clip(0, 3376)
    grey_alpha = tmp_path / 'grey_alpha.png'
    _png_16_bit_grey_alpha(grey_alpha, grey)
    colour_alpha = tmp_path / 'colour_alpha.png'
    cv2.imwrite(str(colour_alpha), np.dstack([grey] * 3 + [np.full_like(grey, 65535)]))
    for path, shape in ((grey_alpha, (12, 16)), (colour_alpha, (12, 16, 3))):
        notes: list[str] = []
        image = read_image_as_stored(path, notes)
        assert image.shape == shape and image.dtype == np.uint8
        assert len(notes) == 1 and '12 bits' in notes[0] and '--mono16-bit-depth' in notes[0]


def _write_pfm_middlebury(path, disparity):
    """Write a PFM as Middlebury and ETH3D ship it: little-endian, bottom row first."""
    height, width = disparity.shape
    path.write_bytes(f'Pf\n{width} {height}\n-1.0\n'.encode()
                     + np.flipud(disparity).astype('<f4').tobytes())


def test_root_may_be_one_scene_folder(tmp_path):
    # A user who points --root at one MiddEval3 / ETH3D / generic scene gets that scene.
    image = np.zeros((8, 12, 3), np.uint8)
    truth = np.full((8, 12), 4.0, np.float32)
    truth[0] = np.inf  # unknown, as Middlebury and ETH3D mark it
    mb = tmp_path / 'Adirondack'
    mb.mkdir()
    cv2.imwrite(str(mb / 'im0.png'), image)
    cv2.imwrite(str(mb / 'im1.png'), image)
    _write_pfm_middlebury(mb / 'disp0GT.pfm', truth)
    (mb / 'calib.txt').write_text('cam0=[1 0 6; 0 1 4; 0 0 1]\nndisp=16\n')
    (tmp_path / 'Adirondack' / 'ambient').mkdir()  # a subfolder is no scene of its own
    samples = load_dataset('middlebury2014', mb)
    assert [s.name for s in samples] == ['Adirondack']
    assert np.isnan(samples[0].disparity[0]).all() and samples[0].disparity[7, 0] == 4.0
    generic = tmp_path / 'mine'
    generic.mkdir()
    cv2.imwrite(str(generic / 'left.png'), image)
    cv2.imwrite(str(generic / 'right.png'), image)
    _write_pfm_middlebury(generic / 'disp.pfm', truth)
    assert [s.name for s in load_dataset('generic', generic)] == ['mine']


@pytest.mark.parametrize('kind, name, folders', [
    ('kitti2015', 'KITTI 2015', ('image_2', 'image_3', 'disp_occ_0')),
    ('kitti2012', 'KITTI 2012', ('colored_0', 'colored_1', 'disp_occ'))])
def test_kitti_root_above_training_says_which_folder(tmp_path, kind, name, folders):
    for folder in folders:
        (tmp_path / 'training' / folder).mkdir(parents=True)
    with pytest.raises(DatasetError, match=rf'is not a {name} training folder: it has none of '
                                           rf'{folders[0]}, {folders[1]} and {folders[2]}; '
                                           r'pass --root .*training$'):
        load_dataset(kind, tmp_path)
    (tmp_path / 'training' / folders[2]).rmdir()
    with pytest.raises(DatasetError, match=rf'it has no {folders[2]} \(of {folders[0]}'):
        load_dataset(kind, tmp_path / 'training')


def test_middlebury_2006_layout_is_named_by_the_other_readers(tmp_path):
    scene = tmp_path / 'Aloe'
    scene.mkdir()
    for name in ('view1.png', 'view5.png', 'disp1.png'):
        cv2.imwrite(str(scene / name), np.zeros((370, 12), np.uint8))
    for kind in ('middlebury2003', 'middlebury2014', 'generic'):
        with pytest.raises(DatasetError, match=r'found Middlebury 2005/2006 files .* read them '
                                               r'with --dataset middlebury2006'):
            load_dataset(kind, tmp_path)


@pytest.mark.parametrize('rows, scale', [(1110, 1), (555, 2), (370, 3)])
def test_middlebury_2006_disparities_are_divided_by_their_size_s_scale(tmp_path, rows, scale):
    scene = tmp_path / 'Aloe'
    scene.mkdir()
    stored = np.zeros((rows, 8), np.uint8)
    stored[0, :3] = (0, 90, 255)
    cv2.imwrite(str(scene / 'view1.png'), np.full((rows, 8, 3), 100, np.uint8))
    cv2.imwrite(str(scene / 'view5.png'), np.full((rows, 8, 3), 120, np.uint8))
    cv2.imwrite(str(scene / 'disp1.png'), stored)
    for root in (tmp_path, scene):  # the folder above the scenes, or one scene
        samples = load_dataset('middlebury2006', root)
        assert len(samples) == 1 and samples[0].name == 'Aloe'
        truth = samples[0].disparity
        assert np.isnan(truth[0, 0]) and np.isnan(truth[1:]).all()  # 0 is unknown
        assert truth[0, 1:3] == pytest.approx([90 / scale, 255 / scale])
        assert samples[0].left.shape == (rows, 8, 3)


def test_middlebury_2006_disparity_of_no_shipped_size_is_refused(tmp_path):
    scene = tmp_path / 'Aloe'
    scene.mkdir()
    for name in ('view1.png', 'view5.png', 'disp1.png'):
        cv2.imwrite(str(scene / name), np.zeros((400, 8), np.uint8))
    samples = load_dataset('middlebury2006', tmp_path)
    with pytest.raises(DatasetError, match=r'disp1.png: a Middlebury 2005/2006 disparity of 400 '
                                           r'rows is none of the sizes .*1110, 555 or 370'):
        samples[0]
    cv2.imwrite(str(scene / 'disp1.png'), np.zeros((370, 8), np.uint16))
    with pytest.raises(DatasetError, match=r'an 8-bit grey PNG, got uint16'):
        samples[0]


def test_real_suite_root_of_one_s_own_scenes_points_to_eval(tmp_path):
    with pytest.raises(DatasetError, match=r'real scene cones is incomplete: .*eval --dataset '
                                           r'generic, middlebury2014 or kitti2015'):
        load_dataset('real', tmp_path)


def test_nonoccluded_ground_truth_is_the_mask_s_or_kitti_s_noc(tmp_path):
    image = np.zeros((4, 6, 3), np.uint8)
    scene = tmp_path / 'Adirondack'
    scene.mkdir()
    cv2.imwrite(str(scene / 'im0.png'), image)
    cv2.imwrite(str(scene / 'im1.png'), image)
    _write_pfm_middlebury(scene / 'disp0GT.pfm', np.full((4, 6), 5.0, np.float32))
    with pytest.raises(DatasetError, match=r'Adirondack has no mask0nocc.png, which '
                                           r'--nonoccluded needs'):
        load_dataset('middlebury2014', tmp_path, nonoccluded=True)
    mask = np.full((4, 6), 255, np.uint8)
    mask[0] = 128  # occluded
    mask[1, :2] = 0  # no ground truth
    cv2.imwrite(str(scene / 'mask0nocc.png'), mask)
    truth = load_dataset('middlebury2014', tmp_path, nonoccluded=True)[0].disparity
    assert np.isnan(truth[0]).all() and np.isnan(truth[1, :2]).all()
    assert (truth[1, 2:] == 5.0).all() and (truth[2:] == 5.0).all()
    assert (load_dataset('middlebury2014', tmp_path)[0].disparity == 5.0).all()  # all pixels
    cv2.imwrite(str(scene / 'mask0nocc.png'), mask[:3])
    with pytest.raises(DatasetError, match=r'mask0nocc.png is 6x3 but .*disp0GT.pfm is 6x4'):
        load_dataset('middlebury2014', tmp_path, nonoccluded=True)[0]
    kitti = tmp_path / 'training'
    for folder in ('image_2', 'image_3', 'disp_occ_0', 'disp_noc_0'):
        (kitti / folder).mkdir(parents=True)
        if folder.startswith('image'):
            cv2.imwrite(str(kitti / folder / '000000_10.png'), image)
    cv2.imwrite(str(kitti / 'disp_occ_0' / '000000_10.png'), np.full((4, 6), 512, np.uint16))
    noc = np.full((4, 6), 512, np.uint16)
    noc[:, 0] = 0  # occluded: no ground truth in disp_noc_0
    cv2.imwrite(str(kitti / 'disp_noc_0' / '000000_10.png'), noc)
    assert np.isfinite(load_dataset('kitti2015', kitti)[0].disparity).all()
    truth = load_dataset('kitti2015', kitti, nonoccluded=True)[0].disparity
    assert np.isnan(truth[:, 0]).all() and (truth[:, 1:] == 2.0).all()
    with pytest.raises(DatasetError, match=r'--nonoccluded applies to middlebury2014, '
                                           r'kitti2012, kitti2015 .*not generic'):
        load_dataset('generic', tmp_path, nonoccluded=True)


def test_kitti_2012_reads_its_colour_views_and_either_ground_truth(tmp_path):
    training = tmp_path / 'training'
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 2] = 200  # red in BGR
    for folder in ('colored_0', 'colored_1', 'image_0', 'disp_occ', 'disp_noc'):
        (training / folder).mkdir(parents=True)
    for folder in ('colored_0', 'colored_1'):
        cv2.imwrite(str(training / folder / '000007_10.png'), image)
        cv2.imwrite(str(training / folder / '000007_11.png'), image)  # the next frame: no pair
    cv2.imwrite(str(training / 'image_0' / '000007_10.png'), image[..., 0])
    occ = np.full((4, 6), 3 * 256, np.uint16)
    noc = occ.copy()
    noc[0] = 0
    cv2.imwrite(str(training / 'disp_occ' / '000007_10.png'), occ)
    cv2.imwrite(str(training / 'disp_noc' / '000007_10.png'), noc)
    sample, = load_dataset('kitti2012', training)
    assert sample.name == '000007_10' and (sample.left[..., 0] == 200).all()  # RGB, colour
    assert (sample.disparity == 3.0).all()
    truth = load_dataset('kitti2012', training, nonoccluded=True)[0].disparity
    assert np.isnan(truth[0]).all() and (truth[1:] == 3.0).all()
    (training / 'colored_1' / '000007_10.png').unlink()
    with pytest.raises(DatasetError, match=r'^KITTI 2012: .*colored_1/000007_10.png is missing'):
        load_dataset('kitti2012', training)
