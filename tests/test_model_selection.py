import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pneumoclf.model_selection import patient_split


def _synthetic_images(patient_sizes, patient_labels):
    """Return (paths, y, groups) with ``patient_sizes[i]`` images of patient i."""
    groups = np.repeat([f"p{i}" for i in range(len(patient_sizes))], patient_sizes)
    y = np.repeat(patient_labels, patient_sizes)
    paths = np.array([f"{group}_{k}.jpeg" for k, group in enumerate(groups)])
    return paths, y, groups


def _realistic_images(n_patients=600, pneumonia_rate=0.57, seed=0):
    """Patients with 1 to ~15 images, pneumonia patients having more of them."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n_patients) < pneumonia_rate).astype(int)
    sizes = np.where(
        labels == 1, rng.geometric(0.45, n_patients), rng.geometric(0.85, n_patients)
    )
    return _synthetic_images(sizes, labels)


def _assert_patient_partition(parts, groups):
    indices = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(indices), np.arange(len(groups)))
    for part in parts:
        assert part.dtype.kind == "i"
        np.testing.assert_array_equal(part, np.sort(part))
    patient_sets = [set(groups[part]) for part in parts]
    for i, first in enumerate(patient_sets):
        for second in patient_sets[i + 1 :]:
            assert first.isdisjoint(second)


@st.composite
def _group_structures(draw):
    n_patients = draw(st.integers(min_value=3, max_value=60))
    sizes = draw(st.lists(st.integers(1, 8), min_size=n_patients, max_size=n_patients))
    labels = draw(st.lists(st.integers(0, 2), min_size=n_patients, max_size=n_patients))
    labels[0], labels[1] = 0, 1
    return np.array(sizes), np.array(labels)


def _part_too_small_for_every_class(size, y, groups):
    """True if ``size`` of each class is less than that class's largest patient.

    Only then may the greedy split leave a part with a positive size empty: a
    part that could take the largest patient of a class is always filled first.
    """
    for label in np.unique(y):
        _, patient_sizes = np.unique(groups[y == label], return_counts=True)
        if size * patient_sizes.sum() >= patient_sizes.max():
            return False
    return True


@settings(max_examples=60, deadline=None)
@given(
    structure=_group_structures(),
    random_state=st.integers(0, 2**31 - 1),
    val_fraction=st.sampled_from([0.0, 0.1, 0.2]),
)
def test_patient_split_partitions_images_by_patient(
    structure, random_state, val_fraction
):
    paths, y, groups = _synthetic_images(*structure)
    sizes = (0.8 - val_fraction, val_fraction, 0.2)

    try:
        parts = patient_split(
            paths, y, groups=groups, sizes=sizes, random_state=random_state
        )
    except ValueError as error:
        assert "came out empty" in str(error)
        assert any(
            _part_too_small_for_every_class(size, y, groups) for size in sizes if size
        )
        return

    _assert_patient_partition(parts, groups)
    if val_fraction == 0:
        assert len(parts[1]) == 0


@pytest.mark.parametrize("structure_seed", [0, 1, 2])
@pytest.mark.parametrize("random_state", [0, 1, 2, 3])
@pytest.mark.parametrize("sizes", [(0.7, 0.15, 0.15), (0.6, 0.2, 0.2), (0.8, 0.0, 0.2)])
def test_patient_split_matches_sizes_and_class_ratios(
    structure_seed, random_state, sizes
):
    paths, y, groups = _realistic_images(seed=structure_seed)

    parts = patient_split(
        paths, y, groups=groups, sizes=sizes, random_state=random_state
    )

    _assert_patient_partition(parts, groups)
    overall_rate = y.mean()
    for part, size in zip(parts, sizes, strict=True):
        assert abs(len(part) / len(y) - size) < 0.01
        if size > 0:
            assert abs(y[part].mean() - overall_rate) < 0.02


def test_patient_split_spreads_large_patients_over_parts():
    paths, y, groups = _realistic_images(n_patients=2000)
    _, images_per_patient = np.unique(groups, return_counts=True)
    mean_images = images_per_patient.mean()

    parts = patient_split(paths, y, groups=groups, random_state=0)

    for part in parts:
        n_patients = len(np.unique(groups[part]))
        assert abs(len(part) / n_patients - mean_images) < 0.1 * mean_images


def test_patient_split_is_deterministic_and_seed_dependent():
    paths, y, groups = _realistic_images()

    first = patient_split(paths, y, groups=groups, random_state=7)
    again = patient_split(paths, y, groups=groups, random_state=7)
    other = patient_split(paths, y, groups=groups, random_state=8)

    for part, part_again in zip(first, again, strict=True):
        np.testing.assert_array_equal(part, part_again)
    assert not np.array_equal(first[2], other[2])


def test_patient_split_accepts_a_random_state_instance():
    paths, y, groups = _realistic_images()

    from_int = patient_split(paths, y, groups=groups, random_state=3)
    from_instance = patient_split(
        paths, y, groups=groups, random_state=np.random.RandomState(3)
    )

    for part, other in zip(from_int, from_instance, strict=True):
        np.testing.assert_array_equal(part, other)


def test_patient_split_derives_patients_from_file_names():
    pneumonia = [
        (f"person{p}", f"train/PNEUMONIA/person{p}_{kind}_{2 * p + k}.jpeg")
        for p in range(40)
        for k, kind in enumerate(["bacteria", "virus"])
    ]
    normal = [(f"IM-{p:04d}", f"train/NORMAL/IM-{p:04d}-0001.jpeg") for p in range(40)]
    patients, paths = (
        np.array(column) for column in zip(*pneumonia, *normal, strict=True)
    )
    y = ["PNEUMONIA"] * len(pneumonia) + ["NORMAL"] * len(normal)

    parts = patient_split(paths, y, sizes=(0.5, 0.25, 0.25), random_state=0)

    _assert_patient_partition(parts, patients)
    assert [len(part) for part in parts] == [60, 30, 30]
    assert [np.isin(part, np.arange(80)).sum() for part in parts] == [40, 20, 20]


def test_patient_split_zero_val_fraction_gives_empty_val():
    paths, y, groups = _realistic_images()

    train, val, test = patient_split(
        paths, y, groups=groups, sizes=(0.75, 0.0, 0.25), random_state=0
    )

    assert len(val) == 0
    assert len(train) + len(test) == len(y)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y": [0, 1, 0]}, "paths and y differ in length"),
        ({"groups": ["a", "b"]}, "groups and paths differ in length"),
        ({"sizes": (0.8, 0.2)}, "three fractions"),
        ({"sizes": (0.8, 0.3, -0.1)}, "non-negative and sum to 1"),
        ({"sizes": (0.5, 0.2, 0.2)}, "non-negative and sum to 1"),
        ({"y": [1, 1, 1, 1]}, "single class"),
        ({"groups": ["a", "a", "b", "b"]}, "2 patient"),
        ({"y": [0, 1, None, 1]}, "y holds missing labels .* at positions 2;"),
        ({"y": [0.0, 1.0, np.nan, 1.0]}, "y holds missing labels .* at positions 2;"),
        ({"groups": ["a", None, "c", None]}, "missing patients .* positions 1, 3;"),
        ({"sizes": (0.98, 0.01, 0.01)}, "The val part came out empty"),
    ],
)
def test_patient_split_rejects_bad_input(kwargs, message):
    arguments = {
        "paths": ["a.png", "b.png", "c.png", "d.png"],
        "y": [0, 1, 0, 1],
        "groups": None,
        "sizes": (0.5, 0.25, 0.25),
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        patient_split(
            arguments["paths"],
            arguments["y"],
            groups=arguments["groups"],
            sizes=arguments["sizes"],
            random_state=0,
        )


# ----------------------------------------------------------- invalid parameters


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


@pytest.mark.parametrize("name", ["tune", "default_search_space", "limit_threads"])
def test_tuning_names_still_reached_here_warn_and_are_the_same(name):
    import pneumoclf.model_selection as model_selection
    import pneumoclf.tuning as tuning

    with pytest.warns(FutureWarning, match=f"moved to pneumoclf.tuning.{name}"):
        assert getattr(model_selection, name) is getattr(tuning, name)


def test_an_unknown_name_is_still_an_attribute_error():
    import pneumoclf.model_selection as model_selection

    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        model_selection.nothing  # noqa: B018
