"""Where users find the package's warnings and errors, and the names made private."""

import importlib

import pytest

import pneumoclf
from pneumoclf import exceptions


@pytest.mark.parametrize(
    ("name", "also_at"),
    [
        ("ImageLoadError", ["pneumoclf", "pneumoclf.preprocessing"]),
        ("ModelFileError", ["pneumoclf", "pneumoclf.persistence"]),
        ("UntrainedNetworkWarning", ["pneumoclf"]),
    ],
)
def test_each_warning_and_error_is_one_class_wherever_it_is_imported(name, also_at):
    defined = getattr(exceptions, name)
    assert defined.__module__ == "pneumoclf.exceptions"
    for module_name in also_at:
        assert getattr(importlib.import_module(module_name), name) is defined
    assert name in pneumoclf.__all__


@pytest.mark.parametrize(
    ("module_name", "name", "check"),
    [
        ("pneumoclf.persistence", "atomic_open", lambda helper: callable(helper)),
        (
            "pneumoclf.report",
            "markdown_to_html",
            lambda helper: helper("# A") == "<h1>A</h1>",
        ),
        (
            "pneumoclf.architecture",
            "count_weights",
            lambda helper: helper((64, 64, 1)) == 117889,
        ),
        (
            "pneumoclf.architecture",
            "resolve_padding",
            lambda helper: helper((8, 8, 1), n_conv_blocks=3, kernel_size=5) == "same",
        ),
    ],
)
def test_helpers_made_private_work_for_one_more_release_with_a_warning(
    module_name, name, check
):
    module = importlib.import_module(module_name)
    with pytest.warns(FutureWarning, match=rf"{module_name}\.{name} is a private"):
        helper = getattr(module, name)
    assert check(helper)
    assert name not in module.__all__
