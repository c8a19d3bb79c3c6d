"""How ImageLoader reads DICOM files: the display chain, hostile files, the extra."""

import sys
import tracemalloc

import numpy as np
import pytest
from PIL import Image
from synthetic import save_dicom

from pneumoclf.datasets import patient_id
from pneumoclf.preprocessing import (
    ImageLoader,
    ImageLoadError,
    cache_info,
    clear_cache,
)

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.pixels import get_decoder  # noqa: E402
from pydicom.uid import JPEGLosslessSV1, RLELossless  # noqa: E402

STORED_12_BIT = np.array([[0, 1000], [2000, 4095]], dtype=np.uint16)


@pytest.fixture(autouse=True)
def empty_cache():
    clear_cache()
    yield
    clear_cache()


def pixels_of(path, image_size=(2, 2), **loader_options):
    """The loaded image of one file, as a 2-D array."""
    loader = ImageLoader(image_size=image_size, cache=False, **loader_options)
    return loader.transform([path])[0, :, :, 0]


def reason_for(path):
    with pytest.raises(ImageLoadError) as caught:
        ImageLoader(image_size=2).transform([path])
    ((failed_path, reason),) = caught.value.failures
    assert failed_path == path
    assert str(path) in str(caught.value)
    return reason


@pytest.mark.parametrize("bits_stored", [12, 16])
def test_without_a_window_the_image_own_range_spans_the_unit_range(
    tmp_path, bits_stored
):
    # 12-bit values in a 16-bit container are shown as a viewer shows them, not
    # squeezed into the bottom 6% of the 16-bit range.
    path = tmp_path / "x.dcm"
    save_dicom(path, STORED_12_BIT, bits_stored=bits_stored)
    np.testing.assert_allclose(pixels_of(path), STORED_12_BIT / 4095, rtol=1e-6)


def test_a_few_stray_pixels_do_not_squeeze_the_own_range(tmp_path):
    stored = np.tile(np.linspace(1000, 3000, 100).astype(np.uint16), (100, 1))
    stored[50, :5] = 65535  # saturated detector elements
    path = tmp_path / "x.dcm"
    save_dicom(path, stored, bits_stored=16)

    shown = pixels_of(path, image_size=100)

    assert shown.min() == 0.0 and shown[0, -1] == 1.0
    np.testing.assert_allclose(shown[0], (stored[0] - 1000) / 2000, atol=1e-6)
    assert (shown[50, :5] == 1.0).all()


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
@pytest.mark.parametrize(
    ("elements", "named"),
    [
        ({"RescaleSlope": "NaN", "RescaleIntercept": 0}, "RescaleSlope"),
        ({"RescaleSlope": 1, "RescaleIntercept": "inf"}, "RescaleIntercept"),
        ({"WindowCenter": "NaN", "WindowWidth": 400}, "window centre nan"),
    ],
)
def test_values_that_are_not_finite_make_the_file_unreadable(tmp_path, elements, named):
    path = tmp_path / "x.dcm"
    save_dicom(path, STORED_12_BIT, **elements)
    assert named in reason_for(path)


@pytest.mark.parametrize(
    ("dtype", "bits", "top"), [(np.uint8, 8, 255), (np.uint16, 16, 65535)]
)
def test_bit_depths_from_8_to_16(tmp_path, dtype, bits, top):
    stored = np.array([[0, top // 3], [top // 2, top]], dtype=dtype)
    path = tmp_path / "x.dcm"
    save_dicom(path, stored, bits_stored=bits)
    np.testing.assert_allclose(pixels_of(path), stored / top, rtol=1e-6)


def test_signed_pixels_keep_their_sign(tmp_path):
    # A signed 12-bit image stores -2048 to 2047: the darkest is the most negative.
    stored = np.array([[-2048, -1], [0, 2047]], dtype=np.int16)
    path = tmp_path / "x.dcm"
    save_dicom(path, stored, bits_stored=12)
    expected = (stored.astype(float) + 2048) / 4095
    np.testing.assert_allclose(pixels_of(path), expected, rtol=1e-6)


def test_monochrome1_is_inverted_so_that_bone_is_bright(tmp_path):
    path = tmp_path / "x.dcm"
    save_dicom(path, STORED_12_BIT, photometric="MONOCHROME1")
    np.testing.assert_allclose(pixels_of(path), 1 - STORED_12_BIT / 4095, atol=1e-6)


def test_rescale_slope_and_intercept_come_before_the_window(tmp_path):
    # Modality values 2 x - 1024: stored 512 is 0, the centre of a window of 201.
    stored = np.array([[0, 462], [512, 612]], dtype=np.uint16)
    path = tmp_path / "x.dcm"
    save_dicom(
        path,
        stored,
        RescaleSlope=2,
        RescaleIntercept=-1024,
        WindowCenter=0,
        WindowWidth=201,
    )
    # Modality -1024, -100, 0, 200; PS3.3 C.11.2.1.2.1 gives
    # (x - (c - 0.5)) / (w - 1) + 0.5 = (x + 0.5) / 200 + 0.5, clipped to [0, 1].
    np.testing.assert_allclose(
        pixels_of(path), [[0.0, 0.0025], [0.5025, 1.0]], rtol=1e-5
    )


def test_rescale_without_a_window_maps_the_rescaled_bit_range(tmp_path):
    path = tmp_path / "x.dcm"
    save_dicom(path, STORED_12_BIT, RescaleSlope=-1, RescaleIntercept=4095)
    # A negative slope reverses the values; the range is still [0, 4095].
    np.testing.assert_allclose(pixels_of(path), 1 - STORED_12_BIT / 4095, atol=1e-6)


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("LINEAR_EXACT", lambda x: np.clip((x - 2000) / 1000 + 0.5, 0, 1)),
        ("SIGMOID", lambda x: 1 / (1 + np.exp(-4 * (x - 2000) / 1000))),
    ],
)
def test_window_functions(tmp_path, function, expected):
    path = tmp_path / "x.dcm"
    save_dicom(
        path,
        STORED_12_BIT,
        WindowCenter=2000,
        WindowWidth=1000,
        VOILUTFunction=function,
    )
    np.testing.assert_allclose(
        pixels_of(path), expected(STORED_12_BIT.astype(float)), rtol=1e-5
    )


def test_the_first_of_several_windows_is_the_view_shown(tmp_path):
    path = tmp_path / "x.dcm"
    save_dicom(path, STORED_12_BIT, WindowCenter=[1000, 3000], WindowWidth=[1001, 2001])
    expected = np.clip((STORED_12_BIT - 999.5) / 1000 + 0.5, 0, 1)
    np.testing.assert_allclose(pixels_of(path), expected, rtol=1e-6)


def _voi_lut(descriptor, table):
    item = Dataset()
    item.add_new(0x00283002, "US", descriptor)  # LUT Descriptor
    item.add_new(0x00283006, "US", table)  # LUT Data
    return item


def test_a_voi_lut_table_is_looked_up_and_wins_over_the_window(tmp_path):
    # 4 entries from stored value 10, 8 bits: below 10 is entry 0, above 13 entry 3.
    stored = np.array([[5, 10], [11, 20]], dtype=np.uint16)
    path = tmp_path / "x.dcm"
    save_dicom(
        path,
        stored,
        VOILUTSequence=[_voi_lut([4, 10, 8], [0, 60, 120, 255])],
        WindowCenter=0,
        WindowWidth=10,
    )
    np.testing.assert_allclose(pixels_of(path), [[0, 0], [60 / 255, 1]], rtol=1e-6)


def test_a_multi_frame_file_gives_its_first_frame(tmp_path):
    frames = np.stack([STORED_12_BIT, 4095 - STORED_12_BIT]).astype(np.uint16)
    path = tmp_path / "x.dcm"
    save_dicom(path, frames)
    np.testing.assert_allclose(pixels_of(path), STORED_12_BIT / 4095, rtol=1e-6)


def test_dicom_pixels_are_resized_and_padded_like_other_images(tmp_path):
    stored = np.full((30, 40), 3000, dtype=np.uint16)
    path = tmp_path / "x.dcm"
    window = {"VOILUTFunction": "LINEAR_EXACT", "WindowCenter": 2048}
    save_dicom(path, stored, WindowWidth=4096, **window)
    shade = (3000 - 2048) / 4096 + 0.5
    stretched = pixels_of(path, image_size=16)
    padded = pixels_of(path, image_size=16, resize="pad")
    np.testing.assert_allclose(stretched, shade, rtol=1e-6)
    # 40 x 30 fits 16 x 12, centred between two black rows above and below.
    np.testing.assert_allclose(padded[2:14], shade, rtol=1e-6)
    assert (padded[:2] == 0).all() and (padded[14:] == 0).all()


def test_rle_compressed_pixels_decode_to_the_same_values(tmp_path):
    plain, compressed = tmp_path / "plain.dcm", tmp_path / "rle.dcm"
    save_dicom(plain, STORED_12_BIT)
    save_dicom(compressed, STORED_12_BIT, transfer_syntax=RLELossless)
    assert pydicom.dcmread(compressed).file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(pixels_of(compressed), pixels_of(plain))


@pytest.mark.skipif(
    get_decoder(JPEGLosslessSV1).is_available,
    reason="a JPEG Lossless pixel data handler is installed",
)
def test_a_compressed_syntax_without_its_handler_names_the_handler(tmp_path):
    path = tmp_path / "jpeg_lossless.dcm"
    dataset = save_dicom(path, STORED_12_BIT, transfer_syntax=RLELossless)
    dataset.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    dataset.save_as(path, enforce_file_format=True)
    reason = reason_for(path)
    assert "JPEG Lossless" in reason
    assert "pylibjpeg" in reason and "gdcm" in reason


def test_dicom_is_recognised_by_its_header_whatever_the_name(tmp_path):
    path = tmp_path / "1.2.840.113619.2.55.3"  # an archive's export name
    save_dicom(path, STORED_12_BIT)
    np.testing.assert_allclose(pixels_of(path), STORED_12_BIT / 4095, rtol=1e-6)


def test_a_dcm_file_without_preamble_is_read(tmp_path):
    path = tmp_path / "bare.DCM"
    save_dicom(path, STORED_12_BIT, preamble=False)
    assert path.read_bytes()[128:132] != b"DICM"
    np.testing.assert_allclose(pixels_of(path), STORED_12_BIT / 4095, rtol=1e-6)


def test_a_file_without_modality_is_read(tmp_path):
    path = tmp_path / "x.dcm"
    dataset = save_dicom(path, STORED_12_BIT)
    del dataset.Modality
    dataset.save_as(path, enforce_file_format=True)
    np.testing.assert_allclose(pixels_of(path), STORED_12_BIT / 4095, rtol=1e-6)


def test_a_file_without_pixel_data_is_named(tmp_path):
    path = tmp_path / "x.dcm"
    dataset = save_dicom(path, STORED_12_BIT)
    del dataset.PixelData
    dataset.save_as(path, enforce_file_format=True)
    assert "no pixel data" in reason_for(path)


def test_a_modality_that_is_not_an_x_ray_is_named(tmp_path):
    path = tmp_path / "x.dcm"
    save_dicom(path, STORED_12_BIT, Modality="CT")
    reason = reason_for(path)
    assert "'CT' is not an X-ray" in reason and "DX" in reason


def test_a_colour_dicom_is_named(tmp_path):
    path = tmp_path / "x.dcm"
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    save_dicom(path, rgb, photometric="RGB", bits_stored=8)
    assert "'RGB' is not grayscale" in reason_for(path)


@pytest.mark.parametrize("content", [b"not a dicom file at all", bytes(300)])
def test_a_dcm_file_that_is_not_dicom_is_named(tmp_path, content):
    path = tmp_path / "x.dcm"
    path.write_bytes(content)
    assert reason_for(path) == "not a DICOM file (no DICOM header or image elements)"


def test_a_truncated_dicom_file_is_named(tmp_path):
    path = tmp_path / "x.dcm"
    save_dicom(path, np.full((64, 64), 100, dtype=np.uint16))
    path.write_bytes(path.read_bytes()[:-2000])
    assert "corrupt DICOM" in reason_for(path)


def test_an_invalid_window_width_is_named(tmp_path):
    path = tmp_path / "x.dcm"
    save_dicom(path, STORED_12_BIT, WindowCenter=100, WindowWidth=0)
    assert "window width" in reason_for(path)


def test_a_frame_beyond_the_pixel_limit_is_refused_before_decoding(
    tmp_path, monkeypatch
):
    path = tmp_path / "x.dcm"
    save_dicom(path, np.zeros((20, 30), dtype=np.uint16))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    assert "too many pixels (30 x 20 = 600" in reason_for(path)


def test_every_bad_dicom_file_is_listed_with_the_good_ones_loaded_otherwise(
    tmp_path,
):
    good, bad = tmp_path / "good.dcm", tmp_path / "bad.dcm"
    save_dicom(good, STORED_12_BIT)
    save_dicom(bad, STORED_12_BIT, Modality="MR")
    with pytest.raises(ImageLoadError) as caught:
        ImageLoader(image_size=2).transform([good, bad, good])
    assert [path for path, _ in caught.value.failures] == [bad]
    assert caught.value.n_images == 3


def test_dicom_images_are_cached_and_read_on_threads(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        paths.append(tmp_path / f"{i}.dcm")
        save_dicom(paths[-1], rng.integers(0, 4096, (8, 8)).astype(np.uint16))
    one_thread = ImageLoader(image_size=4, n_jobs=1, cache=False).transform(paths)
    threads = ImageLoader(image_size=4, n_jobs=3).transform(paths)
    again = ImageLoader(image_size=4, n_jobs=3).transform(paths)
    np.testing.assert_array_equal(threads, one_thread)
    np.testing.assert_array_equal(again, one_thread)
    assert cache_info().hits == 12


def test_without_pydicom_the_error_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "x.dcm"
    save_dicom(path, STORED_12_BIT)
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ImportError, match=r'pip install "pneumoclf\[dicom\]"'):
        ImageLoader(image_size=2).transform([path])


def _deflated(path, pixels, **elements):
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    dataset = save_dicom(path, pixels, **elements)
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    dataset.save_as(path, enforce_file_format=True)
    return path


def test_a_deflated_file_loads_like_its_plain_twin(tmp_path):
    plain = tmp_path / "plain.dcm"
    save_dicom(plain, STORED_12_BIT, PatientID="P-7")
    deflated = _deflated(tmp_path / "deflated.dcm", STORED_12_BIT, PatientID="P-7")
    np.testing.assert_array_equal(pixels_of(deflated), pixels_of(plain))
    assert patient_id(deflated) == "P-7"


def test_a_deflated_bomb_is_refused_within_its_budget(tmp_path, monkeypatch):
    # 32 MB of zeros in a file of a few kilobytes; one frame may take 4 bytes a
    # pixel and 16 MiB more, so 1,000 pixels allow about 16 MiB.
    path = _deflated(tmp_path / "bomb.dcm", np.zeros((4000, 4000), np.uint16))
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert reason_for(path).startswith("DICOM deflated data set inflates beyond 16")
    # Its header is still read, within a small budget: far less than 32 MB.
    tracemalloc.start()
    try:
        assert patient_id(path) == "PAT-1"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024**2


def test_the_input_check_reads_a_deflated_header(tmp_path):
    from pneumoclf.validity import dicom_reasons

    path = _deflated(tmp_path / "lateral.dcm", STORED_12_BIT, ViewPosition="LL")
    (reason,) = dicom_reasons([path])
    assert reason.startswith("DICOM ViewPosition 'LL'")
