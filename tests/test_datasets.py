import os
from pathlib import Path

import numpy as np
import pytest
from awkward import SIDE, dangling_symlink, symlink_loop
from PIL import Image
from synthetic import blob_images, write_images

from pneumoclf import ImageLoader
from pneumoclf.datasets import find_images, load_chest_xray, load_sample, patient_id
from pneumoclf.preprocessing import ImageLoadError


def _write_image(path, suffix_format="JPEG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (16, 16), color=128).save(path, format=suffix_format)


def _write_split(folder, normal, pneumonia):
    for name in normal:
        _write_image(folder / "NORMAL" / name)
    for name in pneumonia:
        _write_image(folder / "PNEUMONIA" / name)


@pytest.fixture
def standard_root(tmp_path):
    root = tmp_path / "chest_xray"
    _write_split(
        root / "train",
        normal=["IM-0115-0001.jpeg", "IM-0115-0002.jpeg"],
        pneumonia=["person1_bacteria_1.jpeg", "person1_virus_2.jpeg"],
    )
    _write_split(
        root / "test",
        normal=["NORMAL2-IM-1427-0001.jpeg"],
        pneumonia=["person9_bacteria_9.jpeg"],
    )
    return root


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("person1000_bacteria_2931.jpeg", "person1000"),
        ("person1000_virus_1681.jpeg", "person1000"),
        ("person447_virus_921_1.jpeg", "person447"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("IM-0429-0001-0002.jpeg", "IM-0429"),
        ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
        ("NORMAL2-IM-0395-0001-0001.png", "NORMAL2-IM-0395"),
        ("scan_42.png", "scan_42"),
        ("IM-.jpeg", "IM-"),
        ("personX_bacteria_1.jpeg", "personX_bacteria_1"),
    ],
)
def test_patient_id_naming_patterns(name, expected):
    assert patient_id(name) == expected
    assert patient_id(f"some/folder/{name}") == expected
    assert patient_id(Path("some") / "folder" / name) == expected


def test_load_chest_xray_standard_layout(standard_root):
    data = load_chest_xray(standard_root)

    names = [Path(path).name for path in data.paths]
    assert names == [
        "NORMAL2-IM-1427-0001.jpeg",
        "person9_bacteria_9.jpeg",
        "IM-0115-0001.jpeg",
        "IM-0115-0002.jpeg",
        "person1_bacteria_1.jpeg",
        "person1_virus_2.jpeg",
    ]
    assert data.split.tolist() == ["test"] * 2 + ["train"] * 4
    assert data.target.tolist() == [0, 1, 0, 0, 1, 1]
    assert data.target.dtype.kind == "i"
    assert data.target_names.tolist() == ["NORMAL", "PNEUMONIA"]
    assert data.groups.tolist() == [
        "NORMAL2-IM-1427",
        "person9",
        "IM-0115",
        "IM-0115",
        "person1",
        "person1",
    ]
    assert all(Path(path).is_file() for path in data.paths)
    assert all(str(path).startswith(str(standard_root)) for path in data.paths)


def test_load_chest_xray_single_split_layout(standard_root):
    data = load_chest_xray(standard_root / "train")

    assert len(data.paths) == 4
    assert data.split.tolist() == [""] * 4
    assert data.target.tolist() == [0, 0, 1, 1]


def test_load_chest_xray_accepts_str_and_is_repeatable(standard_root):
    first = load_chest_xray(str(standard_root))
    second = load_chest_xray(standard_root)
    for key in ("paths", "target", "groups", "split"):
        np.testing.assert_array_equal(first[key], second[key])


def test_load_chest_xray_ignores_non_images_and_hidden_files(standard_root):
    normal = standard_root / "train" / "NORMAL"
    (normal / "notes.txt").write_text("not an image")
    (normal / "Thumbs.db").write_bytes(b"\0")
    (normal / "scan.dcm").write_bytes(b"\0")  # DICOM: listed, named by the loader
    (normal / "scan.dcm.bak").write_bytes(b"\0")
    _write_image(normal / ".hidden.jpeg")
    _write_image(normal / "nested" / "IM-0999-0001.jpeg")
    _write_image(normal / "IM-0200-0001.PNG", suffix_format="PNG")
    _write_image(normal / "IM-0201-0001.JPG")
    _write_image(standard_root / ".cache" / "NORMAL" / "IM-0300-0001.jpeg")
    (standard_root / "docs").mkdir()

    data = load_chest_xray(standard_root)

    names = {Path(path).name for path in data.paths}
    assert len(data.paths) == 9
    assert {"IM-0200-0001.PNG", "IM-0201-0001.JPG", "scan.dcm"} <= names
    assert names.isdisjoint(
        {"notes.txt", "Thumbs.db", "scan.dcm.bak", ".hidden.jpeg", "IM-0999-0001.jpeg"}
    )
    assert set(data.split) == {"train", "test"}


def test_load_chest_xray_class_folders_ignore_case(tmp_path):
    _write_image(tmp_path / "val" / "normal" / "IM-0001-0001.jpeg")
    _write_image(tmp_path / "val" / "Pneumonia" / "person2_virus_3.jpeg")

    data = load_chest_xray(tmp_path)

    assert data.target.tolist() == [0, 1]
    assert data.split.tolist() == ["val", "val"]


def test_load_chest_xray_allows_a_missing_class_folder(tmp_path):
    _write_image(tmp_path / "PNEUMONIA" / "person2_virus_3.jpeg")

    data = load_chest_xray(tmp_path)

    assert data.target.tolist() == [1]


def test_load_chest_xray_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_chest_xray(tmp_path / "absent")


def test_load_chest_xray_root_is_a_file(tmp_path):
    file = tmp_path / "image.jpeg"
    _write_image(file)
    with pytest.raises(NotADirectoryError, match="Not a directory"):
        load_chest_xray(file)


def test_load_chest_xray_root_without_either_layout(tmp_path):
    (tmp_path / "train" / "cats").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds neither NORMAL/ and PNEUMONIA/"):
        load_chest_xray(tmp_path)


def test_load_chest_xray_empty_class_folder_is_named(standard_root):
    empty = standard_root / "test" / "PNEUMONIA"
    for image in empty.iterdir():
        image.unlink()
    (empty / "readme.txt").write_text("no images here")

    with pytest.raises(ValueError, match=r"test[/\\]PNEUMONIA holds no image files"):
        load_chest_xray(standard_root)


def test_load_chest_xray_mixed_layouts_are_ambiguous(standard_root):
    _write_image(standard_root / "NORMAL" / "IM-0500-0001.jpeg")
    with pytest.raises(ValueError, match="both class folders and split folders"):
        load_chest_xray(standard_root)


def test_load_chest_xray_class_folders_differing_by_case(tmp_path):
    _write_image(tmp_path / "NORMAL" / "IM-0001-0001.jpeg")
    _write_image(tmp_path / "normal" / "IM-0002-0001.jpeg")
    if len(list(tmp_path.iterdir())) < 2:
        pytest.skip("case-insensitive file system")
    with pytest.raises(ValueError, match="two NORMAL folders"):
        load_chest_xray(tmp_path)


def test_load_sample_is_a_small_patient_distinct_real_sample():
    data = load_sample()

    assert len(data.paths) >= 150
    counts = np.bincount(data.target, minlength=2)
    assert counts.min() >= 0.4 * counts.sum()
    assert data.target_names.tolist() == ["NORMAL", "PNEUMONIA"]
    assert len(set(data.groups)) == len(data.paths)
    assert set(data.split) == {""}
    files = [Path(path) for path in data.paths]
    assert all(file.is_file() for file in files)
    assert sum(file.stat().st_size for file in files) <= 3.2e6


def test_load_sample_images_are_224_pixel_chest_xrays():
    data = load_sample()
    with Image.open(data.paths[0]) as image:
        assert image.size == (224, 224)
        pixels = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 1])
    assert pixels.std() > 10


def test_load_sample_ships_its_license():
    sample_root = Path(load_sample().paths[0]).parents[1]
    license_text = (sample_root / "LICENSE.md").read_text()

    assert "CC BY 4.0" in license_text
    assert "10.17632/rscbjbr9sj.2" in license_text
    listing = (sample_root / "README.md").read_text()
    assert all(Path(path).name in listing for path in load_sample().paths)


# --------------------------------------------------- awkward and broken folders


def test_load_chest_xray_reads_awkward_names(awkward_root):
    data = load_chest_xray(awkward_root)

    assert len(data.paths) == 32
    assert all(path.startswith(str(awkward_root)) for path in data.paths)
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


# (1000 - 2048) / 4096 + 0.5 for the stored 1000.
WINDOW = {"WindowCenter": 2048, "WindowWidth": 4096, "VOILUTFunction": "LINEAR_EXACT"}


def _dicom_split(folder):
    """A split of DICOM files whose names carry no patient; PatientID does."""
    pytest.importorskip("pydicom")
    from synthetic import save_dicom

    pixels = np.full((8, 8), 1000, dtype=np.uint16)
    for label, patients in (("NORMAL", ["A", "A", "B"]), ("PNEUMONIA", ["C", "D"])):
        (folder / label).mkdir(parents=True)
        for i, patient in enumerate(patients):
            name = f"{label.lower()}_{i}.dcm" if i else f"{label.lower()}_{i}.DCM"
            save_dicom(folder / label / name, pixels, PatientID=patient, **WINDOW)


def test_dicom_files_that_all_name_one_patient_are_warned_about(tmp_path):
    pytest.importorskip("pydicom")
    from synthetic import save_dicom

    pixels = np.full((8, 8), 1000, dtype=np.uint16)
    for label in ("NORMAL", "PNEUMONIA"):
        (tmp_path / label).mkdir()
        for i in range(3):
            save_dicom(tmp_path / label / f"{i}.dcm", pixels, PatientID="ANON")
    with pytest.warns(UserWarning, match="All 6 images of .* belong to one patient"):
        data = load_chest_xray(tmp_path)
    assert set(data.groups) == {"ANON"}


def test_load_chest_xray_reads_dicom_files_and_groups_them_by_patient_id(tmp_path):
    _dicom_split(tmp_path)
    data = load_chest_xray(tmp_path)
    assert [Path(path).name for path in data.paths] == [
        "normal_0.DCM",
        "normal_1.dcm",
        "normal_2.dcm",
        "pneumonia_0.DCM",
        "pneumonia_1.dcm",
    ]
    assert data.groups.tolist() == ["A", "A", "B", "C", "D"]
    assert data.target.tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_allclose(
        ImageLoader(image_size=4).transform(data.paths), 0.244140625, rtol=1e-6
    )


def test_dicom_files_without_extension_are_listed_only_when_asked(tmp_path):
    pytest.importorskip("pydicom")
    from synthetic import save_dicom

    _write_split(tmp_path, normal=["IM-0001-0001.jpeg"], pneumonia=["person1_a.png"])
    save_dicom(tmp_path / "PNEUMONIA" / "1.2.840.99", np.zeros((4, 4), np.uint16))
    (tmp_path / "PNEUMONIA" / "README").write_text("not an image")
    plain = load_chest_xray(tmp_path)
    detected = load_chest_xray(tmp_path, detect_dicom=True)
    assert len(plain.paths) == 2
    assert sorted(Path(path).name for path in detected.paths) == [
        "1.2.840.99",
        "IM-0001-0001.jpeg",
        "person1_a.png",
    ]
    assert "PAT-1" in detected.groups.tolist()


def test_patient_id_of_dicom_files_reads_patient_id(tmp_path):
    pytest.importorskip("pydicom")
    from synthetic import save_dicom

    pixels = np.zeros((4, 4), np.uint16)
    save_dicom(tmp_path / "person7_virus_1.dcm", pixels, PatientID="HOSP-0042")
    save_dicom(tmp_path / "IM-0115-0001.dcm", pixels, PatientID="")
    save_dicom(tmp_path / "export", pixels, PatientID="HOSP-0043")
    save_dicom(tmp_path / "person9_virus_1.jpeg", pixels, PatientID="HOSP-0044")
    assert patient_id(tmp_path / "person7_virus_1.dcm") == "HOSP-0042"
    assert patient_id(tmp_path / "export") == "HOSP-0043"
    # An empty PatientID falls back to the name; an image suffix is never opened.
    assert patient_id(tmp_path / "IM-0115-0001.dcm") == "IM-0115"
    assert patient_id(tmp_path / "person9_virus_1.jpeg") == "person9"
    # A DICOM name that does not exist yet, or does not parse, is its name.
    assert patient_id("person3_bacteria_1.dcm") == "person3"
    (tmp_path / "broken.dcm").write_bytes(b"\0" * 10)
    assert patient_id(tmp_path / "broken.dcm") == "broken"


def test_patient_id_of_a_dicom_file_without_pydicom_names_the_extra(
    tmp_path, monkeypatch
):
    import sys

    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ImportError, match=r"pneumoclf\[dicom\]"):
        patient_id(tmp_path / "x.dcm")
    assert patient_id("IM-0115-0001.jpeg") == "IM-0115"


def test_find_images_lists_every_image_below_a_folder_sorted(tmp_path):
    _write_image(tmp_path / "b" / "IM-0002-0001.jpeg")
    _write_image(tmp_path / "a" / "deep" / "person1_virus_1.PNG", "PNG")
    _write_image(tmp_path / "a" / "x.tif", "TIFF")
    _write_image(tmp_path / ".cache" / "hidden.jpeg")
    _write_image(tmp_path / "a" / ".hidden.jpeg")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    found = find_images(tmp_path)
    assert found == [
        str(tmp_path / "a" / "deep" / "person1_virus_1.PNG"),
        str(tmp_path / "a" / "x.tif"),
        str(tmp_path / "b" / "IM-0002-0001.jpeg"),
    ]
    assert find_images(str(tmp_path / "b")) == [found[-1]]
    with pytest.raises(NotADirectoryError, match="Not a folder"):
        find_images(tmp_path / "a" / "x.tif")
