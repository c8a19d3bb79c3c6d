"""Docstring examples run as doctests, and the API reference lists every module.

The examples run here so that ``python -m pytest`` checks them without building
the documentation.
"""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import pneumoclf

DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: Modules whose docstrings need no example: the package's own (its names are
#: documented, with examples, in their modules) and the command line's.
WITHOUT_EXAMPLES = {"pneumoclf", "pneumoclf.cli"}

API_PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.rst"


def _public_modules():
    names = [
        info.name
        for info in pkgutil.iter_modules(pneumoclf.__path__, prefix="pneumoclf.")
        if not info.name.rsplit(".", 1)[1].startswith("_")
    ]
    return ["pneumoclf", *sorted(names)]


PUBLIC_MODULES = _public_modules()
# Modules whose examples train networks for many seconds: run with the slow tests.
SLOW_EXAMPLES = {"pneumoclf.explain"}


@pytest.mark.parametrize(
    "module_name",
    [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_EXAMPLES else name
     for name in PUBLIC_MODULES],
)  # fmt: skip
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", ()):
        getattr(module, name)  # names imported on first use join the module now
    runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
    report = []
    for test in doctest.DocTestFinder().find(module):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    if module_name not in WITHOUT_EXAMPLES:
        assert runner.tries > 0, (
            f"{module_name} has no docstring example that runs; add an Examples "
            "section (numpydoc) to its public functions and classes."
        )


def test_api_reference_lists_every_public_module():
    listed = set(
        re.findall(r"^\s+(pneumoclf(?:\.\w+)?)\s*$", API_PAGE.read_text(), re.M)
    )
    missing = set(PUBLIC_MODULES) - listed - {"pneumoclf.cli"}
    assert not missing, f"docs/api.rst does not list {sorted(missing)}"


def test_api_reference_indexes_every_public_class_and_function():
    import inspect

    indexed = set(
        re.findall(r"^\s+(pneumoclf\.\w+\.\w+)\s*$", API_PAGE.read_text(), re.M)
    )
    missing = []
    for module_name in PUBLIC_MODULES:
        if module_name in {"pneumoclf", "pneumoclf.cli"}:
            continue
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            is_object = inspect.isclass(value) or inspect.isfunction(value)
            # A name lent by another module is indexed where it is defined.
            home = getattr(value, "__module__", module_name)
            if is_object and f"{home}.{name}" not in indexed:
                missing.append(f"{home}.{name}")
    assert not missing, f"docs/api.rst does not index {missing}"


BUILT_DOCS = API_PAGE.parent / "_build" / "html"

# Each code block of a page: whether it overflows its column, and how.
_CODE_BLOCKS = """Array.from(document.querySelectorAll("div.highlight pre"), pre => ({
    language: pre.parentElement.parentElement.className,
    overflows: pre.scrollWidth > pre.clientWidth + 1,
    overflowX: getComputedStyle(pre).overflowX,
}))"""


@pytest.mark.browser
@pytest.mark.parametrize(
    "page",
    [
        "user_guide/quickstart.html",
        "user_guide/installation.html",
        "user_guide/cli.html",
    ],
)
def test_built_pages_show_every_command_whole_on_a_1280_px_screen(chromium, page):
    import os

    from browser import visit

    built = BUILT_DOCS / page
    if not built.is_file():
        reason = f"the documentation is not built ({built} is missing)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run builds it before the tests.")
        pytest.skip(reason)
    seen = visit(chromium, built.as_uri(), width=1280, expression=_CODE_BLOCKS)
    assert seen.scroll_width <= 1280
    blocks = seen.value
    assert blocks
    for block in blocks:
        if re.search(r"highlight-(console|text|bash)", block["language"]):
            assert not block["overflows"], block  # commands wrap, whole
        elif block["overflows"]:
            assert block["overflowX"] in ("auto", "scroll"), block  # code scrolls


def _parameter_descriptions(docstring):
    """``{name: description}`` of a numpydoc Parameters section."""
    section = docstring.split("Parameters\n")[1].split("\n    Returns")[0]
    entries = re.findall(r"^    (\w+) : [^\n]*\n((?:        [^\n]*\n)+)", section, re.M)
    return {name: " ".join(text.split()) for name, text in entries}


def test_each_network_parameter_is_described_alike_everywhere():
    from pneumoclf import PneumoniaCNNClassifier
    from pneumoclf.architecture import (
        NETWORK_PARAMETERS,
        augmentation_layers,
        build_cnn,
    )

    classifier = _parameter_descriptions(PneumoniaCNNClassifier.__doc__)
    network = _parameter_descriptions(build_cnn.__doc__)
    augmentation = _parameter_descriptions(augmentation_layers.__doc__)
    for name in NETWORK_PARAMETERS:
        assert classifier[name] == network[name], name
    for name, description in augmentation.items():
        if name != "seed":
            assert description == network[name], name


def test_no_docstring_keeps_a_field_to_fill():
    import inspect

    unfilled = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            value = getattr(module, name)
            documented = [value]
            if inspect.isclass(value):
                documented += [member for _, member in inspect.getmembers(value)]
            for item in documented:
                if "%(" in (getattr(item, "__doc__", None) or ""):
                    unfilled.append(f"{module_name}.{name}")
    assert unfilled == []
