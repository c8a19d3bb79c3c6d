"""Unusual and hostile input at every public entry point.

Each case must give the right result, or an error that names the file, the option
or the value at fault. Cases that the module tests already cover are not repeated.
"""

import contextlib
import csv
import hashlib
import io
import json
import os
import struct
import tracemalloc
import warnings
import zipfile
import zlib
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from synthetic import blob_images, write_images

import pneumoclf.persistence as persistence
from pneumoclf import ImageLoader, PneumoniaCNNClassifier
from pneumoclf.cli import main
from pneumoclf.datasets import load_chest_xray
from pneumoclf.explain import gradcam, save_overlays
from pneumoclf.metrics import (
    choose_threshold,
    clinical_report,
    make_recall_weighted_scorer,
    make_specificity_at_recall_scorer,
    recall_weighted_score,
    specificity_at_recall_score,
)
from pneumoclf.model_selection import patient_split
from pneumoclf.persistence import ModelFileError, load_model, save_model
from pneumoclf.preprocessing import ImageLoadError, cache_info, clear_cache

SIDE = 16
SMALL_CNN = dict(
    n_conv_blocks=2, filters=4, dense_units=8, epochs=2, batch_size=16,
    early_stopping=False, random_state=0,
)  # fmt: skip
# Spaces, accents, CJK and emoji in folder and file names.
AWKWARD_FOLDER = "radiografías de tórax 中文 😀"
AWKWARD_MODEL_NAME = "modèle 肺 🫁.pneumoclf"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
not_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="file permissions do not bind the superuser",
)


@pytest.fixture(autouse=True, scope="module")
def empty_cache():
    clear_cache()
    yield
    clear_cache()


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def xray_root(tmp_path_factory):
    """A chest_xray/train folder whose every path holds awkward characters."""
    root = tmp_path_factory.mktemp("data") / AWKWARD_FOLDER
    X, y = blob_images(32, SIDE, seed=0)
    for label, name in enumerate(("NORMAL", "PNEUMONIA")):
        paths = write_images(root / "train" / name, X[y == label], y[y == label])
        for path in paths[::2]:
            Path(path).rename(Path(path).with_name(f"scan é 中 😀 {Path(path).name}"))
    return root


@pytest.fixture(scope="module")
def pipeline(xray_root):
    data = load_chest_xray(xray_root)
    return Pipeline(
        [
            ("load", ImageLoader(image_size=SIDE)),
            ("cnn", PneumoniaCNNClassifier(**SMALL_CNN)),
        ]
    ).fit(data.paths, data.target)


@pytest.fixture(scope="module")
def classifier(pipeline):
    return pipeline[-1]


@pytest.fixture(scope="module")
def held_out():
    """Eight 8-bit grayscale pictures the pipeline never saw, both classes."""
    X, _ = blob_images(8, SIDE, seed=5)
    return np.round(X * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def reference(held_out, tmp_path_factory, pipeline):
    """The held-out pictures as 8-bit grayscale PNGs and the pipeline's output."""
    folder = tmp_path_factory.mktemp("reference")
    paths = [save_image(Image.fromarray(gray), folder / f"{i}.png")
             for i, gray in enumerate(held_out)]  # fmt: skip
    return paths, pipeline.predict_proba(paths)


@pytest.fixture(scope="module")
def saved_model(pipeline, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pneumoclf"
    save_model(pipeline, path)
    return path


def save_image(image, path, **options):
    image.save(path, **options)
    return path


# ----------------------------------------------- every mode and bit depth, for real


def _chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def raw_png(width, height, *, bit_depth, color_type, scanlines=None):
    """PNG bytes written by hand, for depths PIL does not write (or lies about)."""
    if scanlines is None:
        scanlines = [b""] * height
    pixels = zlib.compress(b"".join(b"\0" + line for line in scanlines))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )


def _packed(values, bit_depth):
    per_byte = 8 // bit_depth
    groups = np.pad(values, (0, -len(values) % per_byte)).reshape(-1, per_byte)
    shifts = np.arange(per_byte - 1, -1, -1) * bit_depth
    return (groups.astype(np.uint8) << shifts).sum(axis=1).astype(np.uint8).tobytes()


def low_depth_gray_png(gray, bit_depth):
    levels = gray >> (8 - bit_depth)
    height, width = gray.shape
    data = raw_png(
        width, height, bit_depth=bit_depth, color_type=0,
        scanlines=[_packed(row, bit_depth) for row in levels],
    )  # fmt: skip
    return data, levels * (255 // (2**bit_depth - 1))


def sixteen_bit_png(gray, color_type, n_channels):
    """16 bits per channel: gray (+ opaque alpha) or RGB, each 257 * gray."""
    height, width = gray.shape
    channels = [gray.astype(">u2") * 257] * n_channels
    if color_type == 4:
        channels[-1] = np.full_like(channels[0], 65535)
    pixels = np.stack(channels, axis=-1)
    scanlines = [row.tobytes() for row in pixels]
    data = raw_png(width, height, bit_depth=16, color_type=color_type,
                   scanlines=scanlines)  # fmt: skip
    return data, gray


def _from_bytes(mode, *planes):
    return Image.frombytes(mode, planes[0].shape[::-1], np.dstack(planes).tobytes())


def _gray_palette(gray):
    image = Image.frombytes("P", gray.shape[::-1], gray.tobytes())
    image.putpalette(np.repeat(np.arange(256, dtype=np.uint8), 3).tobytes())
    return image


def _left_half_transparent(gray):
    alpha = np.full_like(gray, 255)
    alpha[:, : gray.shape[1] // 2] = 0
    expected = gray.copy()
    expected[:, : gray.shape[1] // 2] = 0
    return _from_bytes("RGBA", gray, gray, gray, alpha), expected


def _bilevel(gray):
    bright = gray > 127
    return Image.fromarray(bright), np.where(bright, 255, 0).astype(np.uint8)


def _sixteen_bit(gray):
    return gray.astype(np.uint16) * 257


def _gray_16(gray):
    return Image.fromarray(_sixteen_bit(gray))


def _gray_16_big_endian(gray):
    return Image.fromarray(_sixteen_bit(gray).astype(">u2"))


def _gray_32(gray):
    return Image.fromarray(_sixteen_bit(gray).astype(np.int32))


def _gray_float(gray):
    return Image.fromarray(gray.astype(np.float32) / 255)


def _rgb(gray):
    return _from_bytes("RGB", gray, gray, gray)


def _rgba_opaque(gray):
    return _from_bytes("RGBA", gray, gray, gray, np.full_like(gray, 255))


def _gray_alpha_opaque(gray):
    return _from_bytes("LA", gray, np.full_like(gray, 255))


def _cmyk(gray):
    no_ink = np.zeros_like(gray)
    return _from_bytes("CMYK", no_ink, no_ink, no_ink, 255 - gray)


def _ycbcr(gray):
    neutral = np.full_like(gray, 128)
    return _from_bytes("YCbCr", gray, neutral, neutral)


def _same(encode):
    return lambda gray: (encode(gray), gray)


# id: (suffix, save options or None for raw bytes, gray -> (image, 8-bit equivalent))
ENCODINGS = {
    "L-bmp": ("bmp", {}, _same(Image.fromarray)),
    "L-tiff": ("tif", {}, _same(Image.fromarray)),
    "L-gif": ("gif", {}, _same(Image.fromarray)),
    "L-webp-lossless": ("webp", {"lossless": True}, _same(Image.fromarray)),
    "png-named-jpeg": ("jpeg", {"format": "PNG"}, _same(Image.fromarray)),
    "1-bit-png": ("png", {}, _bilevel),
    "2-bit-gray-png": ("png", None, lambda gray: low_depth_gray_png(gray, 2)),
    "4-bit-gray-png": ("png", None, lambda gray: low_depth_gray_png(gray, 4)),
    "I;16-png": ("png", {}, _same(_gray_16)),
    "I;16B-tiff": ("tif", {}, _same(_gray_16_big_endian)),
    "I-tiff": ("tif", {}, _same(_gray_32)),
    "F-tiff": ("tif", {}, _same(_gray_float)),
    "16-bit-gray-alpha-png": ("png", None, lambda gray: sixteen_bit_png(gray, 4, 2)),
    "48-bit-rgb-png": ("png", None, lambda gray: sixteen_bit_png(gray, 2, 3)),
    "RGB-png": ("png", {}, _same(_rgb)),
    "RGBA-opaque-png": ("png", {}, _same(_rgba_opaque)),
    "RGBA-half-transparent-png": ("png", {}, _left_half_transparent),
    "LA-png": ("png", {}, _same(_gray_alpha_opaque)),
    "P-gray-palette-png": ("png", {}, _same(_gray_palette)),
    "CMYK-tiff": ("tif", {}, _same(_cmyk)),
    "YCbCr-tiff": ("tif", {}, _same(_ycbcr)),
}
LOSSY_ENCODINGS = {
    "L-jpeg": ("jpeg", {"quality": 95}, _same(Image.fromarray)),
    "RGB-jpeg": ("jpg", {"quality": 95}, _same(_rgb)),
}


def write_encoded(folder, pictures, encoding):
    """Write each 8-bit picture in ``encoding``; return the paths and equivalents."""
    suffix, options, encode = encoding
    paths, equivalents = [], []
    for index, gray in enumerate(pictures):
        image, equivalent = encode(gray)
        path = folder / f"{index}.{suffix}"
        if options is None:
            path.write_bytes(image)
        else:
            image.save(path, **options)
        paths.append(path)
        equivalents.append(equivalent)
    return paths, np.array(equivalents)


@pytest.mark.parametrize("encoding", ENCODINGS, ids=list(ENCODINGS))
def test_every_mode_and_depth_loads_and_predicts_like_8_bit_gray(
    encoding, held_out, pipeline, tmp_path
):
    paths, equivalents = write_encoded(tmp_path, held_out, ENCODINGS[encoding])

    images = ImageLoader(image_size=SIDE).transform(paths)
    np.testing.assert_allclose(images[..., 0], equivalents / 255, atol=1e-6)

    twins = [save_image(Image.fromarray(gray), tmp_path / f"twin_{index}.png")
             for index, gray in enumerate(equivalents)]  # fmt: skip
    np.testing.assert_allclose(
        pipeline.predict_proba(paths), pipeline.predict_proba(twins), atol=1e-6
    )


@pytest.mark.parametrize("encoding", LOSSY_ENCODINGS, ids=list(LOSSY_ENCODINGS))
def test_lossy_files_predict_close_to_their_source(
    encoding, held_out, reference, pipeline, tmp_path
):
    paths, _ = write_encoded(tmp_path, held_out, LOSSY_ENCODINGS[encoding])

    images = ImageLoader(image_size=SIDE).transform(paths)
    assert np.abs(images[..., 0] - held_out / 255).mean() < 0.02
    np.testing.assert_allclose(pipeline.predict_proba(paths), reference[1], atol=0.02)


def test_labels_come_out_the_same_whatever_the_encoding(
    held_out, reference, pipeline, tmp_path
):
    paths, _ = write_encoded(tmp_path, held_out, ENCODINGS["I;16-png"])

    np.testing.assert_array_equal(
        pipeline.predict(paths), pipeline.predict(reference[0])
    )


# --------------------------------------------------------- broken and hostile files


def png_declaring(width, height):
    """A tiny PNG whose header claims ``width x height`` pixels."""
    return raw_png(width, height, bit_depth=8, color_type=0)


def decompression_bomb(folder):
    # 100000 x 100000 pixels declared in 60 bytes: far above twice PIL's limit.
    path = folder / "bomb.png"
    path.write_bytes(png_declaring(100_000, 100_000))
    return path


def moderate_bomb(folder):
    # 10000 x 10000: above PIL's limit but below twice it, where PIL only warns.
    path = folder / "large.png"
    path.write_bytes(png_declaring(10_000, 10_000))
    return path


def symlink_loop(folder):
    os.symlink(folder / "b.png", folder / "a.png")
    os.symlink(folder / "a.png", folder / "b.png")
    return folder / "a.png"


def dangling_symlink(folder):
    os.symlink(folder / "deleted.png", folder / "link.png")
    return folder / "link.png"


def named_pipe(folder):
    os.mkfifo(folder / "pipe.png")
    return folder / "pipe.png"


def zero_width_png(folder):
    path = folder / "zero.png"
    path.write_bytes(png_declaring(0, 16))
    return path


def corrupt_pixel_stream(folder):
    path = folder / "garbled.png"
    header = struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0)
    path.write_bytes(
        PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"garbage")
        + _chunk(b"IEND", b"")
    )  # fmt: skip
    return path


def jpeg_magic_only(folder):
    path = folder / "stub.jpeg"
    path.write_bytes(b"\xff\xd8\xff")
    return path


HOSTILE_FILES = [
    (decompression_bomb, "too many pixels; possible decompression bomb"),
    (moderate_bomb, "too many pixels (10000 x 10000 = 100000000 > "),
    (symlink_loop, "Too many levels of symbolic links"),
    (dangling_symlink, "broken symbolic link"),
    (named_pipe, "not a regular file"),
    (zero_width_png, "not an image"),
    (corrupt_pixel_stream, "corrupt or unsupported image"),
    (jpeg_magic_only, "not an image"),
]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("make_file", "reason"),
    HOSTILE_FILES,
    ids=[make_file.__name__ for make_file, _ in HOSTILE_FILES],
)
def test_hostile_files_are_named_with_their_reason(tmp_path, make_file, reason):
    good = save_image(Image.new("L", (8, 8), 90), tmp_path / "good.png")
    path = make_file(tmp_path)

    with pytest.raises(ImageLoadError) as raised:
        ImageLoader(image_size=8).transform([good, path])

    assert raised.value.failures == [(path, raised.value.failures[0][1])]
    assert reason in raised.value.failures[0][1]
    assert str(raised.value).startswith("1 of 2 images could not be read:")


def test_a_bomb_is_refused_without_decoding_it(tmp_path):
    path = decompression_bomb(tmp_path)

    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError):
            ImageLoader(image_size=8, cache=False).transform([path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024**2


def test_a_symlink_to_an_image_loads_like_the_image(tmp_path):
    target = save_image(Image.new("L", (8, 8), 51), tmp_path / "target.png")
    os.symlink(target, tmp_path / "link.jpeg")

    images = ImageLoader(image_size=4).transform([tmp_path / "link.jpeg"])

    np.testing.assert_allclose(images, 0.2, atol=1e-6)


@pytest.mark.parametrize("path", ["scan\0.png", Path("a") / "b\0c.png"])
def test_a_path_with_a_null_character_is_refused_by_position(path):
    with pytest.raises(
        ValueError, match=r"position 0: .* \(contains a null character\)"
    ):
        ImageLoader().fit([path])


def test_bytes_paths_are_refused_by_position(tmp_path):
    path = save_image(Image.new("L", (8, 8), 51), tmp_path / "a.png")

    with pytest.raises(ValueError, match=r"position 1: b'.*a\.png' \(bytes\)"):
        ImageLoader().transform([path, os.fsencode(path)])


# ------------------------------------------------------------------ load_chest_xray


def test_load_chest_xray_reads_awkward_names(xray_root):
    data = load_chest_xray(xray_root)

    assert len(data.paths) == 32
    assert all(path.startswith(str(xray_root)) for path in data.paths)
    assert sum("😀" in Path(path).name for path in data.paths) == 16
    images = ImageLoader(image_size=SIDE).transform(data.paths)
    assert images.shape == (32, SIDE, SIDE, 1)


@pytest.fixture
def small_root(tmp_path):
    X, y = blob_images(4, 8, seed=3)
    for label, name in enumerate(("NORMAL", "PNEUMONIA")):
        write_images(tmp_path / "root" / name, X[y == label], y[y == label])
    return tmp_path / "root"


def test_broken_links_in_a_class_folder_are_listed_then_named_by_the_loader(
    small_root,
):
    dangling = dangling_symlink(small_root / "NORMAL")
    loop = symlink_loop(small_root / "PNEUMONIA")

    data = load_chest_xray(small_root)

    assert {str(dangling), str(loop)} <= set(data.paths)
    with pytest.raises(ImageLoadError) as raised:
        ImageLoader(image_size=8).transform(data.paths)
    reasons = dict(raised.value.failures)
    assert reasons[str(dangling)].startswith("broken symbolic link")
    assert "symbolic links" in reasons[str(loop)]


def test_a_folder_named_like_an_image_is_not_an_image(small_root):
    (small_root / "NORMAL" / "IM-0999-0001.png").mkdir()

    data = load_chest_xray(small_root)

    assert not any(path.endswith("IM-0999-0001.png") for path in data.paths)


def test_a_linked_class_folder_is_followed(small_root, tmp_path):
    (small_root / "PNEUMONIA").rename(tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", small_root / "PNEUMONIA")

    data = load_chest_xray(small_root)

    assert data.target.tolist() == [0, 0, 1, 1]


def test_an_unreadable_class_folder_is_named(small_root, monkeypatch):
    locked = small_root / "PNEUMONIA"
    original_iterdir = Path.iterdir

    def refusing_iterdir(folder):
        if folder == locked:
            raise PermissionError(13, "Permission denied", str(folder))
        return original_iterdir(folder)

    monkeypatch.setattr(Path, "iterdir", refusing_iterdir)

    with pytest.raises(PermissionError) as raised:
        load_chest_xray(small_root)
    assert raised.value.filename == str(locked)


# ------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def cli_model(xray_root, tmp_path_factory):
    model = tmp_path_factory.mktemp("cli") / AWKWARD_MODEL_NAME
    argv = ["train", xray_root, "-o", model, "--epochs", 1, "--image-size", SIDE,
            "--seed", 0, "--batch-size", 16, "--quiet"]  # fmt: skip
    with contextlib.redirect_stderr(io.StringIO()):
        status = main([str(arg) for arg in argv])
    return status, model


def run_cli(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def test_cli_trains_on_awkward_paths_into_an_awkward_file_name(cli_model):
    status, model = cli_model

    assert status == 0
    assert list(model.parent.iterdir()) == [model]
    assert load_model(model)[-1].image_shape_ == (SIDE, SIDE, 1)


def test_cli_predicts_awkward_paths_exactly(cli_model, xray_root, capsys):
    _, model = cli_model
    paths = [str(path) for path in sorted(xray_root.glob("train/*/scan*"))[:4]]

    status, out, _ = run_cli(capsys, "predict", model, *paths)

    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["path"] for row in rows] == paths
    expected = load_model(model).predict_proba(paths)[:, 1]
    np.testing.assert_array_equal(
        [float(row["pneumonia_probability"]) for row in rows], expected
    )


def test_cli_predicts_a_file_whose_name_starts_with_a_dash(
    cli_model, tmp_path, monkeypatch, capsys
):
    _, model = cli_model
    save_image(Image.new("L", (SIDE, SIDE), 128), tmp_path / "-scan.png")
    monkeypatch.chdir(tmp_path)

    status, out, _ = run_cli(capsys, "predict", model, "--json", "--", "-scan.png")

    assert status == 0
    assert [row["path"] for row in json.loads(out)] == ["-scan.png"]


@not_root
def test_cli_names_an_image_it_may_not_read(cli_model, tmp_path, capsys):
    locked = save_image(Image.new("L", (SIDE, SIDE), 10), tmp_path / "locked.png")
    locked.chmod(0)
    try:
        status, _, err = run_cli(capsys, "predict", cli_model[1], locked)
    finally:
        locked.chmod(0o644)

    assert status == 1
    assert f"{locked}: permission denied" in err


@pytest.fixture
def hostile_places(tmp_path, cli_model, xray_root):
    folder = tmp_path / "hostile"
    folder.mkdir()
    with_broken_link = tmp_path / "with_broken_link"
    for label in ("NORMAL", "PNEUMONIA"):
        for source in sorted((xray_root / "train" / label).iterdir())[:2]:
            destination = with_broken_link / label / source.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(source.read_bytes())
    os.symlink(
        tmp_path / "gone.jpeg", with_broken_link / "NORMAL" / "IM-0042-0001.jpeg"
    )
    os.symlink(folder / "loop_b", folder / "loop_a.pneumoclf")
    os.symlink(folder / "loop_a.pneumoclf", folder / "loop_b")
    (folder / "notes.png").write_text("not an image")
    return dict(
        model=cli_model[1], data=xray_root, dir=folder, broken=with_broken_link,
        good=next((xray_root / "train" / "NORMAL").iterdir()),
        dangling=dangling_symlink(folder), bomb=decompression_bomb(folder),
        text=folder / "notes.png", model_loop=folder / "loop_a.pneumoclf",
        tmp=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "{model}", "{dir}"], "{dir}: is a directory"),
        (["predict", "{model}", "{dangling}"], "{dangling}: broken symbolic link"),
        (["predict", "{model}", "{bomb}"], "{bomb}: too many pixels"),
        (["predict", "{model}", "{text}"], "{text}: not an image"),
        (["predict", "{model}", "{good}", "-o", "{dir}"],
         "-o/--output {dir} is a directory"),
        (["evaluate", "{dir}", "{data}"], "{dir}: Is a directory."),
        (["evaluate", "{model_loop}", "{data}"],
         "{model_loop}: Too many levels of symbolic links."),
        (["train", "{broken}", "-o", "{tmp}/m.pneumoclf"],
         "{broken}/NORMAL/IM-0042-0001.jpeg: broken symbolic link"),
        (["train", "{data}", "-o", "{dir}"], "-o/--output {dir} is a directory"),
    ],
)  # fmt: skip
def test_cli_names_the_hostile_file(argv, message, hostile_places, capsys):
    status, _, err = run_cli(capsys, *(arg.format(**hostile_places) for arg in argv))

    assert status == 1
    assert err.startswith("pneumoclf: error: ")
    assert message.format(**hostile_places) in err
    assert not (hostile_places["tmp"] / "m.pneumoclf").exists()


# ------------------------------------------------- classifier: shapes, dtypes, labels


@pytest.fixture(scope="module")
def images(held_out):
    return (held_out / 255).astype(np.float32)


@pytest.mark.parametrize(
    "convert",
    [
        lambda X: X.astype(np.float64),
        lambda X: X.astype(object),
        lambda X: X.tolist(),
        lambda X: X[..., np.newaxis],
        lambda X: np.asfortranarray(X),
        lambda X: np.swapaxes(np.swapaxes(X, 1, 2).copy(), 1, 2),
    ],
    ids=["float64", "object", "nested-lists", "4-d", "fortran", "strided-view"],
)
def test_any_array_like_of_the_images_predicts_the_same(classifier, images, convert):
    expected = classifier.predict_proba(images)

    np.testing.assert_array_equal(classifier.predict_proba(convert(images)), expected)


@pytest.mark.parametrize("dtype", [bool, np.int64, np.uint8, np.float16])
def test_binary_images_of_any_dtype_predict_the_same(classifier, images, dtype):
    binary = images > 0.45

    proba = classifier.predict_proba(binary.astype(dtype))

    np.testing.assert_array_equal(
        proba, classifier.predict_proba(binary.astype(np.float32))
    )


def test_a_single_image_in_a_batch_of_one_predicts_like_in_the_batch(
    classifier, images
):
    np.testing.assert_allclose(
        classifier.predict_proba(images[3:4]), classifier.predict_proba(images)[3:4],
        atol=1e-6,
    )  # fmt: skip


@pytest.mark.parametrize("make_X", [lambda X: X * 255, lambda X: X - 2.0])
def test_images_outside_the_unit_range_warn_at_predict(classifier, images, make_X):
    with pytest.warns(UserWarning, match=r"expects images scaled to \[0, 1\]"):
        classifier.predict_proba(make_X(images))


def test_uint8_pixels_warn_at_predict_with_the_range_found(classifier, held_out):
    with pytest.warns(UserWarning, match=r"values in \[\d+, \d+\].*divide 8-bit"):
        classifier.predict(held_out)


def test_images_in_the_unit_range_do_not_warn(classifier, images):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        classifier.predict_proba(images)


@pytest.mark.parametrize(
    ("make_X", "error", "message"),
    [
        (lambda X: X[0], ValueError, r"is one image.*X\[np\.newaxis\]"),
        (lambda X: X[0, ..., np.newaxis], ValueError, r"is one image"),
        (lambda X: np.repeat(X[..., None], 3, axis=3), ValueError,
         "Images of 3 channels do not match the 1-channel"),
        (lambda X: X[:, :8, :8], ValueError, r"8x8x1 .* 16x16x1"),
        (lambda X: X[:, :, :, None, None], ValueError, "5 dimensions"),
        (lambda X: X[:0], ValueError, "0 sample"),
        (lambda X: X[:, 0, 0], ValueError, "Expected 2D array"),
        (lambda X: sp.csr_matrix(X.reshape(len(X), -1)), TypeError,
         "dense data is required"),
        (lambda X: np.where(X > 0.9, np.nan, X), ValueError, "NaN"),
        (lambda X: np.where(X > 0.9, -np.inf, X), ValueError, "infinity"),
        (lambda X: np.full(X.shape, "bright", dtype=object), ValueError,
         "could not convert string to float"),
        (lambda X: X.astype(complex), ValueError, "Complex data not supported"),
    ],
    ids=["2-d-image", "3-d-image", "channels", "size", "5-d", "empty", "1-d",
         "sparse", "nan", "inf", "strings", "complex"],
)  # fmt: skip
def test_wrong_input_at_predict_says_what_is_wrong(
    classifier, images, make_X, error, message
):
    with pytest.raises(error, match=message):
        classifier.predict_proba(make_X(images))


def test_an_empty_list_of_paths_is_refused_by_the_pipeline(pipeline):
    with pytest.raises(ValueError, match="at least one image path"):
        pipeline.predict([])


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_threshold"])
def test_nothing_predicts_before_fit(images, method):
    clf = PneumoniaCNNClassifier(threshold="auto")
    arguments = () if method == "decision_threshold" else (images,)

    with pytest.raises(NotFittedError):
        getattr(clf, method)(*arguments)


def test_an_unfitted_pipeline_refuses_paths(reference):
    unfitted = Pipeline([("load", ImageLoader()), ("cnn", PneumoniaCNNClassifier())])

    with pytest.raises(NotFittedError):
        unfitted.predict_proba(reference[0])


def labels(y, negative, positive):
    return np.where(np.asarray(y) == 1, positive, negative)


Y = np.array([0, 1] * 6)
X12 = np.random.default_rng(0).random((12, 8, 8)).astype(np.float32)


def _with(values, position, value):
    values = np.array(values, dtype=object)
    values[position] = value
    return values


@pytest.mark.parametrize(
    ("X", "y", "error", "message"),
    [
        (X12, labels(Y, "NORMAL ", " PNEUMONIA"), ValueError,
         r"greater one, 'NORMAL ', would be taken as pneumonia"),
        (X12, labels(Y, "normal", "PNEUMONIA"), ValueError,
         r"greater one, 'normal', would be taken as pneumonia"),
        (X12, _with(Y, 3, None), ValueError, "missing labels .* at positions 3"),
        (X12, np.where(Y == 1, 1.0, np.nan), ValueError,
         "missing labels .* at positions 0, 2, 4"),
        (X12, _with(Y, 1, "1"), ValueError, "mixes text labels such as '1'"),
        (X12, np.column_stack([Y, 1 - Y]), ValueError,
         r"1d array, got an array of shape \(12, 2\)"),
        (X12, Y[:-1], ValueError, "inconsistent numbers of samples"),
        (X12[:0], Y[:0], ValueError, "y is empty"),
        (X12[:1], Y[1:2], ValueError, r"one class only \(\[1\]\)"),
        (X12, np.arange(12) % 3, ValueError, "3 classes"),
        (np.zeros((12, 8, 0)), Y, ValueError,
         r"at least one row, one column and one channel; got X of shape \(12, 8, 0\)"),
        (sp.csr_matrix(X12.reshape(12, -1)), Y, TypeError, "dense data is required"),
        (np.where(X12 > 0.9, np.nan, X12), Y, ValueError, "NaN"),
    ],
    ids=["whitespace-labels", "case-labels", "none-label", "nan-labels",
         "mixed-labels", "two-column-y", "lengths", "empty", "one-sample",
         "three-classes", "zero-width", "sparse", "nan-pixels"],
)  # fmt: skip
def test_wrong_training_input_says_what_is_wrong(X, y, error, message):
    with pytest.raises(error, match=message):
        PneumoniaCNNClassifier(**SMALL_CNN).fit(X, y)


@pytest.fixture(scope="module")
def fitted_on_uint8_and_a_column_y(held_out):
    y = np.array([0, 1] * 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = PneumoniaCNNClassifier(**SMALL_CNN).fit(
            held_out, labels(y, "NORMAL", "PNEUMONIA").reshape(-1, 1)
        )
    return clf, caught


def test_uint8_training_images_warn(fitted_on_uint8_and_a_column_y):
    _, caught = fitted_on_uint8_and_a_column_y
    messages = [str(w.message) for w in caught if w.category is UserWarning]

    assert any("values in [0, 255]" in message for message in messages)


def test_a_column_y_warns_and_is_ravelled(fitted_on_uint8_and_a_column_y, held_out):
    clf, caught = fitted_on_uint8_and_a_column_y

    assert any(issubclass(w.category, DataConversionWarning) for w in caught)
    assert clf.classes_.tolist() == ["NORMAL", "PNEUMONIA"]
    with pytest.warns(UserWarning):
        assert clf.predict(held_out).shape == (len(held_out),)


def test_a_dataframe_is_a_table_whose_column_names_are_checked(images):
    table = pd.DataFrame(images[:, 0, :], columns=[f"px{i}" for i in range(SIDE)])
    y = np.array([0, 1] * 4)
    clf = PneumoniaCNNClassifier(**SMALL_CNN).fit(table, y)

    assert clf.image_shape_ == (1, SIDE, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        from_frame = clf.predict_proba(table)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        from_array = clf.predict_proba(table.to_numpy())
    np.testing.assert_array_equal(from_frame, from_array)
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict_proba(table[table.columns[::-1]])


# ----------------------------------------------------------------- invalid parameters


@pytest.mark.parametrize(
    "params",
    [
        {"image_size": True}, {"image_size": None}, {"image_size": "64"},
        {"image_size": [8, 8]}, {"image_size": (8, True)}, {"resize": "PAD"},
        {"resize": None}, {"n_jobs": 1.5}, {"n_jobs": "2"}, {"cache": None},
        {"cache": 1},
    ],
    ids=str,
)  # fmt: skip
def test_invalid_loader_parameters_are_named(params, reference):
    with pytest.raises(InvalidParameterError, match=f"'{next(iter(params))}'"):
        ImageLoader(**params).transform(reference[0][:1])


@pytest.mark.parametrize(
    "params",
    [
        {"n_conv_blocks": 0}, {"kernel_size": 0}, {"dense_units": 0},
        {"batch_norm": "yes"}, {"lr_schedule": "cosine"}, {"batch_size": 0},
        {"epochs": 0}, {"early_stopping": "no"}, {"validation_fraction": 1.0},
        {"patience": 0}, {"class_weight": "auto"}, {"rotation": 0.6},
        {"zoom": 1.0}, {"shift": -0.1}, {"contrast": 1.5}, {"target_recall": 0.0},
        {"callbacks": "early"}, {"callbacks": [object()]},
        {"random_state": "seed"}, {"verbose": -1}, {"threshold": np.nan},
    ],
    ids=str,
)  # fmt: skip
def test_invalid_classifier_parameters_are_named(params):
    with pytest.raises(InvalidParameterError, match=f"'{next(iter(params))}'"):
        PneumoniaCNNClassifier(**params).fit(X12, Y)


def test_valid_padding_on_too_small_images_names_the_parameters():
    clf = PneumoniaCNNClassifier(padding="valid", n_conv_blocks=3, epochs=1)

    with pytest.raises(ValueError, match=r"padding='valid' leaves no pixel of 8x8"):
        clf.fit(X12, Y)


def test_class_weight_for_labels_not_in_y_is_named():
    clf = PneumoniaCNNClassifier(class_weight={0: 1.0, 2: 5.0}, epochs=1)

    with pytest.raises(ValueError, match=r"classes, \[1\], are not in class_weight"):
        clf.fit(X12, Y)


Y_TRUE = [0, 0, 1, 1]
Y_SCORE = [0.1, 0.6, 0.4, 0.9]
METRIC_CALLS = {
    "choose_threshold": lambda **kw: choose_threshold(Y_TRUE, Y_SCORE, **kw),
    "clinical_report": lambda **kw: clinical_report(Y_TRUE, Y_SCORE, **kw),
    "recall_weighted_score": lambda **kw: recall_weighted_score(Y_TRUE, Y_TRUE, **kw),
    "specificity_at_recall_score": (
        lambda **kw: specificity_at_recall_score(Y_TRUE, Y_TRUE, **kw)
    ),
    "make_recall_weighted_scorer": make_recall_weighted_scorer,
    "make_specificity_at_recall_scorer": make_specificity_at_recall_scorer,
}


@pytest.mark.parametrize(
    ("function", "kwargs"),
    [
        ("choose_threshold", {"beta": "2"}), ("choose_threshold", {"beta": 0}),
        ("choose_threshold", {"beta": np.inf}), ("choose_threshold", {"beta": True}),
        ("choose_threshold", {"min_specificity": True}),
        ("choose_threshold", {"min_specificity": -0.1}),
        ("choose_threshold", {"min_recall": 1.5}),
        ("choose_threshold", {"min_recall": np.nan}),
        ("clinical_report", {"threshold": None}),
        ("clinical_report", {"threshold": "0.5"}),
        ("clinical_report", {"threshold": np.nan}),
        ("clinical_report", {"threshold": True}),
        ("recall_weighted_score", {"beta": -1}),
        ("recall_weighted_score", {"min_specificity": 2}),
        ("specificity_at_recall_score", {"min_recall": "0.9"}),
        ("make_recall_weighted_scorer", {"beta": 0}),
        ("make_recall_weighted_scorer", {"min_specificity": np.nan}),
        ("make_specificity_at_recall_scorer", {"min_recall": -1}),
    ],
    ids=str,
)  # fmt: skip
def test_invalid_metric_parameters_are_named(function, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        METRIC_CALLS[function](**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sizes": (np.nan, 0.5, 0.5)}, r"sizes must be non-negative .* \[nan"),
        ({"sizes": None}, "sizes must hold three fractions"),
        ({"random_state": "seed"}, "'seed' cannot be used to seed"),
        ({"y": np.ones((4, 2))}, r"1d array, got an array of shape \(4, 2\)"),
    ],
)
def test_invalid_split_parameters_are_named(kwargs, message):
    arguments = {"y": [0, 1, 0, 1], "sizes": (0.5, 0.0, 0.5), **kwargs}
    y = arguments.pop("y")

    with pytest.raises(ValueError, match=message):
        patient_split(["a.png", "b.png", "c.png", "d.png"], y, **arguments)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer": 3}, "layer=3 is not a convolutional layer"),
        ({"layer": ""}, "layer='' is not a convolutional layer"),
        ({"batch_size": 0}, "batch_size must be a positive integer; got 0"),
        ({"batch_size": -1}, "batch_size must be a positive integer"),
        ({"batch_size": 1.5}, "batch_size must be a positive integer"),
        ({"batch_size": True}, "batch_size must be a positive integer"),
    ],
)
def test_invalid_gradcam_parameters_are_named(classifier, images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gradcam(classifier, images[:2], **kwargs)


@pytest.mark.parametrize("alpha", ["0.5", 1.5, np.nan, None])
def test_invalid_alpha_is_refused_before_anything_is_written(
    pipeline, reference, tmp_path, alpha
):
    with pytest.raises(ValueError, match="alpha must be a number in"):
        save_overlays(pipeline, reference[0][:1], tmp_path / "out", alpha=alpha)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ model files


def test_saving_over_a_directory_names_it_and_leaves_nothing(pipeline, tmp_path):
    folder = tmp_path / "model.pneumoclf"
    folder.mkdir()

    with pytest.raises(IsADirectoryError) as raised:
        save_model(pipeline, folder)

    assert raised.value.filename == str(folder)
    assert list(tmp_path.iterdir()) == [folder]
    assert list(folder.iterdir()) == []


def test_saving_into_a_missing_folder_names_the_folder(pipeline, tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        save_model(pipeline, tmp_path / "absent" / "model.pneumoclf")

    assert raised.value.filename == str(tmp_path / "absent")
    assert ".tmp" not in str(raised.value)


@pytest.mark.parametrize(
    ("make_path", "error"),
    [
        (lambda folder: folder, IsADirectoryError),
        (lambda folder: folder / "absent" / "model.pneumoclf", FileNotFoundError),
        (dangling_symlink, FileNotFoundError),
        (symlink_loop, OSError),
    ],
    ids=["directory", "missing-folder", "dangling-link", "link-loop"],
)
def test_loading_from_a_path_that_is_no_file_names_it(tmp_path, make_path, error):
    path = make_path(tmp_path)

    with pytest.raises(error) as raised:
        load_model(path)

    assert raised.value.filename == str(path)


def test_a_pipe_is_refused_as_a_model_file_without_reading_it(tmp_path):
    pipe = named_pipe(tmp_path)
    # Holding both ends with data inside makes a reader fail fast instead of
    # waiting for a writer, should the pipe ever be opened.
    both_ends = os.open(pipe, os.O_RDWR)
    try:
        os.write(both_ends, b"PK\x03\x04 not a model")
        with pytest.raises(ModelFileError, match="it is not a regular file"):
            load_model(pipe)
        assert os.read(both_ends, 64) == b"PK\x03\x04 not a model"
    finally:
        os.close(both_ends)


def test_a_linked_model_file_loads_and_predicts_the_same(
    saved_model, pipeline, reference, tmp_path
):
    os.symlink(saved_model, tmp_path / "latest.pneumoclf")

    loaded = load_model(tmp_path / "latest.pneumoclf")

    np.testing.assert_array_equal(loaded.predict_proba(reference[0]), reference[1])


def test_saving_over_a_link_never_writes_through_it(pipeline, saved_model, tmp_path):
    before = saved_model.read_bytes()
    link = tmp_path / "link.pneumoclf"
    os.symlink(saved_model, link)

    save_model(pipeline, link)

    assert saved_model.read_bytes() == before
    assert not link.is_symlink()
    load_model(link)


def read_members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def with_metadata(saved_model, destination, change):
    members = read_members(saved_model)
    metadata = json.loads(members["metadata.json"])
    change(metadata)
    members["metadata.json"] = json.dumps(metadata)
    return write_members(destination, members)


def test_unexpected_members_are_ignored_and_never_extracted(
    saved_model, reference, tmp_path
):
    members = read_members(saved_model)
    members.update({"../../evil.sh": b"rm -rf ~\n", "/etc/passwd": b"root::0:0",
                    "payload.pkl": b"\x80\x05cos\nsystem\n."})  # fmt: skip
    (tmp_path / "inside").mkdir()
    path = write_members(tmp_path / "inside" / "m.pneumoclf", members)

    loaded = load_model(path)

    np.testing.assert_array_equal(loaded.predict_proba(reference[0]), reference[1])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["inside", "m.pneumoclf"]


def _stream_zeros(archive, name, n_bytes):
    chunk = bytes(1024**2)
    with archive.open(name, "w", force_zip64=True) as member:
        for _ in range(n_bytes // len(chunk)):
            member.write(chunk)


def _peak_memory_of(function, *args):
    tracemalloc.start()
    try:
        with contextlib.suppress(ModelFileError):
            function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_oversized_metadata_is_refused_without_expanding_it(saved_model, tmp_path):
    path = tmp_path / "bomb.pneumoclf"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _stream_zeros(archive, "metadata.json", 65 * 1024**2)
        archive.writestr("model.keras", read_members(saved_model)["model.keras"])
    assert path.stat().st_size < 1024**2

    with pytest.raises(ModelFileError, match=r"metadata\.json is implausibly large"):
        load_model(path)
    assert _peak_memory_of(load_model, path) < 4 * 1024**2


def test_a_network_that_would_expand_enormously_is_refused(
    saved_model, tmp_path, monkeypatch
):
    monkeypatch.setattr(persistence, "_MIN_CHECKED_EXPANSION_BYTES", 1024**2)
    path = tmp_path / "bomb.pneumoclf"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", read_members(saved_model)["metadata.json"])
        _stream_zeros(archive, "model.keras", 8 * 1024**2)

    with pytest.raises(ModelFileError, match=r"model\.keras would expand from \d+ to"):
        load_model(path)
    assert _peak_memory_of(load_model, path) < 2 * 1024**2


def _network_with_lambda(marker):
    # The marker path is a constant of the lambda's own code, so it is saved with
    # it: the file appears whenever the layer is rebuilt, that is, run.
    touch_marker = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")
    inputs = keras.Input((SIDE, SIDE, 1))
    marked = keras.layers.Lambda(touch_marker)(inputs)
    flat = keras.layers.Flatten()(marked)
    outputs = keras.layers.Dense(1, activation="sigmoid")(flat)
    return keras.Model(inputs, outputs)


def test_a_network_with_a_lambda_layer_is_refused_and_never_run(saved_model, tmp_path):
    marker = tmp_path / "lambda_ran"
    network_file = tmp_path / "lambda.keras"
    _network_with_lambda(marker).save(network_file)
    marker.unlink(missing_ok=True)
    network = network_file.read_bytes()
    metadata = json.loads(read_members(saved_model)["metadata.json"])
    metadata["model_sha256"] = hashlib.sha256(network).hexdigest()
    members = {"metadata.json": json.dumps(metadata), "model.keras": network}
    path = write_members(tmp_path / "m.pneumoclf", members)

    with pytest.raises(ModelFileError, match=r"(?s)cannot be loaded safely .*Lambda"):
        load_model(path)
    assert not marker.exists()

    # The same network loaded unsafely does run its code: the payload is live.
    keras.saving.load_model(network_file, safe_mode=False)
    assert marker.exists()


def _set_class(where, name):
    def change(metadata):
        target = metadata["estimator"]
        if where == "step":
            target = target["steps"][0]
        target["class"] = name

    return change


def _set_fitted(key, value):
    def change(metadata):
        metadata["fitted"][key] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_class("step", "sklearn.preprocessing.FunctionTransformer"),
         r"unknown class 'sklearn\.preprocessing\.FunctionTransformer'"),
        (_set_class("top", "builtins.eval"), r"unknown class 'builtins\.eval'"),
        (_set_class("top", ["sklearn.pipeline.Pipeline"]), "unknown class"),
        (_set_class("step", None), "unknown class None"),
        (_set_fitted("image_shape_", {"tuple": [8, 8, 1]}),
         r"takes inputs of shape \(16, 16, 1\), but image_shape_ is \(8, 8, 1\)"),
        (_set_fitted("chosen_threshold_", 7.0),
         r"chosen_threshold_ must be None or a number in \[0, 1\], got 7\.0"),
        (_set_fitted("chosen_threshold_", {"float": "nan"}),
         r"chosen_threshold_ must be None or a number in \[0, 1\], got nan"),
        (_set_fitted("classes_", {"ndarray": {"dtype": "<i8", "values": [1, 0]}}),
         r"two distinct labels in sorted order, got \[1, 0\]"),
        (_set_fitted("classes_", {"ndarray": {"dtype": "<i8", "values": [1, 1]}}),
         r"two distinct labels in sorted order, got \[1, 1\]"),
        (_set_fitted("classes_",
                     {"ndarray": {"dtype": "<U200000000", "values": ["a", "b"]}}),
         r"unsupported array dtype <U200000000"),
        (_set_fitted("secret_", 1), r"unknown attributes \['secret_'\]"),
    ],
    ids=["step-class", "builtin", "class-list", "class-none", "image-shape",
         "threshold", "threshold-nan", "swapped-classes", "one-class",
         "huge-label-dtype", "unknown-attribute"],
)  # fmt: skip
def test_tampered_metadata_is_refused_naming_the_file(
    saved_model, tmp_path, change, message
):
    path = with_metadata(saved_model, tmp_path / "m.pneumoclf", change)

    with pytest.raises(ModelFileError, match=message) as raised:
        load_model(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("depth", [990, 100_000])
def test_deeply_nested_metadata_is_refused(saved_model, tmp_path, depth):
    members = read_members(saved_model)
    metadata = json.loads(members["metadata.json"])
    metadata["estimator"]["steps"][1]["params"]["filters"] = "NESTED"
    nested = "[" * depth + "1" + "]" * depth
    members["metadata.json"] = json.dumps(metadata).replace('"NESTED"', nested)
    path = write_members(tmp_path / "m.pneumoclf", members)

    with pytest.raises(
        ModelFileError, match=r"not valid JSON|cannot rebuild"
    ) as raised:
        load_model(path)
    assert str(path) in str(raised.value)


# ------------------------------------------------------------------ metrics input


SCORE_FUNCTIONS = {
    "choose_threshold": choose_threshold,
    "clinical_report": clinical_report,
}


@pytest.mark.parametrize("function", SCORE_FUNCTIONS)
@pytest.mark.parametrize(
    ("y_true", "y_score", "message"),
    [
        (Y_TRUE, [0.1, np.nan, 0.4, 0.9], "1 NaN or infinite"),
        (Y_TRUE, [0.1, 1.6, 0.4, 0.9], r"in \[0, 1\], got values in \[0.1, 1.6\]"),
        (Y_TRUE, [-0.1, 0.6, 0.4, 0.9], r"in \[0, 1\]"),
        (Y_TRUE, np.column_stack([1 - np.array(Y_SCORE), Y_SCORE]),
         r"y_score should be a 1d array .* predict_proba\(X\)\[:, 1\]"),
        (Y_TRUE, 0.5, r"y_score should be a 1d array .* shape \(\)"),
        (Y_TRUE, ["low", "high", "low", "high"], "could not convert string"),
        ([0, None, 1, 1], Y_SCORE, "y_true holds missing labels .* positions 1"),
        ([0, np.nan, 1, 1], Y_SCORE, "y_true holds missing labels"),
        (["NORMAL ", "NORMAL ", " PNEUMONIA", " PNEUMONIA"], Y_SCORE,
         "'NORMAL ', would be taken as pneumonia"),
        (["a", "a", "b", "b"], Y_SCORE, None),
    ],
    ids=["nan", "above-1", "below-0", "proba-2-columns", "scalar", "strings",
         "none-label", "nan-label", "whitespace-labels", "unknown-pos-label"],
)  # fmt: skip
def test_bad_scores_and_labels_are_named(function, y_true, y_score, message):
    kwargs = {} if message is not None else {"pos_label": "c"}
    message = message or r"pos_label='c' is not one of the labels \['a', 'b'\]"

    with pytest.raises(ValueError, match=message):
        SCORE_FUNCTIONS[function](y_true, y_score, **kwargs)


def test_missing_predicted_labels_are_named():
    with pytest.raises(ValueError, match=r"y_pred holds missing labels .* positions 2"):
        recall_weighted_score([0, 1, 1], [0, 1, None])


@pytest.mark.parametrize(
    "convert",
    [
        list,
        lambda values: pd.Series(values, index=[7, 3, 5, 1]),
        lambda values: np.array(values).reshape(-1, 1),
    ],
    ids=["list", "series-with-shuffled-index", "column"],
)
def test_scores_in_any_one_dimensional_form_give_the_same_results(convert):
    y_true, y_score = convert(Y_TRUE), convert(Y_SCORE)

    assert choose_threshold(y_true, y_score) == choose_threshold(
        np.array(Y_TRUE), np.array(Y_SCORE)
    )
    assert clinical_report(y_true, y_score) == clinical_report(Y_TRUE, Y_SCORE)


def test_padded_labels_that_sort_right_or_come_with_pos_label_give_the_same_results():
    padded = ["NORMAL ", "NORMAL ", "PNEUMONIA ", "PNEUMONIA "]
    swapped = ["NORMAL ", "NORMAL ", " PNEUMONIA", " PNEUMONIA"]
    expected = clinical_report(Y_TRUE, Y_SCORE)

    assert clinical_report(padded, Y_SCORE) == expected
    assert clinical_report(swapped, Y_SCORE, pos_label=" PNEUMONIA") == expected


def test_a_scorer_with_an_unknown_pos_label_names_it():
    y = np.array(["NORMAL", "PNEUMONIA"] * 4)
    X = np.arange(8).reshape(-1, 1)
    dummy = DummyClassifier(strategy="stratified", random_state=0).fit(X, y)

    with pytest.raises(ValueError, match=r"pos_label=.?PNEUMONA.? is not"):
        make_recall_weighted_scorer(pos_label="PNEUMONA")(dummy, X, y)


# ---------------------------------------------------------------- loader geometry


@pytest.fixture(scope="module")
def geometry_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("geometry")


WHITE = {"L": 255, "RGB": (255, 255, 255), "I;16": 65535}
sides = st.integers(1, 64)


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    mode=st.sampled_from(sorted(WHITE)),
    resize=st.sampled_from(["stretch", "pad"]),
    image_size=st.one_of(sides, st.tuples(sides, sides)),
)
def test_loader_geometry_for_any_size_mode_and_target(
    geometry_folder, width, height, mode, resize, image_size
):
    path = geometry_folder / f"{mode.replace(';', '')}_{width}x{height}.png"
    Image.new(mode, (width, height), WHITE[mode]).save(path)
    target_h, target_w = (
        (image_size,) * 2 if isinstance(image_size, int) else image_size
    )

    images = ImageLoader(image_size=image_size, resize=resize, cache=False).transform(
        [path]
    )

    assert images.shape == (1, target_h, target_w, 1)
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    picture = images[0, :, :, 0]
    if resize == "stretch":
        np.testing.assert_allclose(picture, 1.0, atol=1e-6)
        return
    rows = np.flatnonzero(picture.any(axis=1))
    columns = np.flatnonzero(picture.any(axis=0))
    top, left = rows[0], columns[0]
    fitted_h, fitted_w = rows[-1] + 1 - top, columns[-1] + 1 - left
    np.testing.assert_allclose(
        picture[top : top + fitted_h, left : left + fitted_w], 1.0, atol=1e-6
    )
    assert np.count_nonzero(picture) == fitted_h * fitted_w  # exact zeros elsewhere
    assert (top, left) == ((target_h - fitted_h) // 2, (target_w - fitted_w) // 2)
    assert fitted_h == target_h or fitted_w == target_w
    scale = min(target_h / height, target_w / width)
    assert abs(fitted_h - max(1, height * scale)) <= 1
    assert abs(fitted_w - max(1, width * scale)) <= 1


# ------------------------------------------------------------------------- memory


def test_loading_many_files_holds_one_output_and_no_copy_of_the_images(tmp_path):
    n_images, side = 300, 96
    rng = np.random.default_rng(0)
    paths = [
        save_image(Image.fromarray(rng.integers(0, 256, (side, side), np.uint8)),
                   tmp_path / f"{index}.png")
        for index in range(n_images)
    ]  # fmt: skip
    # Bookkeeping of the threads and paths, about 2 KiB a path; a second copy
    # of the images would take 2.6 MiB even at 8 bits.
    allowance = 1.5 * 1024**2

    for cache in (False, True):
        clear_cache()
        tracemalloc.start()
        try:
            images = ImageLoader(image_size=side, cache=cache).transform(paths)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        cached = cache_info().nbytes
        assert cached == (n_images * side * side if cache else 0)
        assert images.nbytes == n_images * side * side * 4
        assert peak < images.nbytes + cached + allowance, cache
    clear_cache()


@pytest.mark.parametrize(
    ("image", "bytes_per_pixel"),
    [
        (Image.new("L", (20, 30), 7), 1),
        (Image.new("RGB", (20, 30), (7, 8, 9)), 1),
        (Image.new("I;16", (20, 30), 7000), 4),
        (Image.new("F", (20, 30), 0.5), 4),
    ],
    ids=["L", "RGB", "I;16", "F"],
)
def test_the_cache_holds_the_documented_bytes_per_pixel(
    tmp_path, image, bytes_per_pixel
):
    path = save_image(image, tmp_path / "image.tif")
    clear_cache()

    ImageLoader(image_size=(12, 10)).transform([path])

    assert cache_info().nbytes == 12 * 10 * bytes_per_pixel
    clear_cache()
