"""Sphinx configuration of the pneumoclf documentation.

Build it from the repository root, warnings being errors::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The API pages (``docs/generated``) and the example gallery (``docs/auto_examples``)
are generated during the build; the examples run on the CPU on the bundled sample.
"""

import argparse
import os
import re
import textwrap
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# TensorFlow's C++ start-up notices clutter the build log; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The examples draw their figures without a display.
os.environ.setdefault("MPLBACKEND", "Agg")

from sphinx.util import logging
from sphinx_gallery.sorting import ExplicitOrder

import pneumoclf

logger = logging.getLogger(__name__)

# -- Project -------------------------------------------------------------------------

project = "pneumoclf"
author = "pneumoclf maintainers"
copyright = "2026, pneumoclf maintainers"
release = pneumoclf.__version__
version = ".".join(release.split(".")[:2])

# -- General -------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "sg_execution_times.rst"]
default_role = "py:obj"
# Quotes in parameter types and code-like text stay straight.
smartquotes = False

# -- API reference -------------------------------------------------------------------

autosummary_generate = True
# A module's page lists exactly the names of its __all__ (templates in _templates/).
autosummary_ignore_module_all = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
# Members are listed by autosummary and the class template, not by numpydoc.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Parameter types stay plain text: numpydoc's type links point at labels of the
# Python and NumPy inventories, which an offline build does not have.
numpydoc_xref_param_type = False


def _exported_objects():
    """``{"pneumoclf.preprocessing.ImageLoader": "pneumoclf.ImageLoader", ...}``.

    Each class and function that the package exports is documented once, in the
    module that defines it, where the relative references of its docstring
    resolve; :func:`_resolve_exported_name` makes references to the short name
    users import point at that page.
    """
    exported = {}
    for name in sorted(pneumoclf.__all__, key=str.lower):
        obj = getattr(pneumoclf, name)
        module = getattr(obj, "__module__", None)
        if module and module != "pneumoclf" and hasattr(obj, "__qualname__"):
            exported[f"{module}.{obj.__qualname__}"] = f"pneumoclf.{name}"
    return exported


_EXPORTED_AS = _exported_objects()
_DEFINED_AS = {short: full for full, short in _EXPORTED_AS.items()}
autosummary_context = {"exported_as": _EXPORTED_AS}


def _resolve_exported_name(app, env, node, contnode):
    """Resolve ``pneumoclf.ImageLoader`` (and its members) to the documented name."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    module = node.get("py:module")
    candidates = [target, f"{module}.{target}"] if module else [target]
    for candidate in candidates:
        for short, full in _DEFINED_AS.items():
            if candidate == short or candidate.startswith(short + "."):
                return env.get_domain("py").resolve_xref(
                    env,
                    node["refdoc"],
                    app.builder,
                    node["reftype"],
                    full + candidate[len(short) :],
                    node,
                    contnode,
                )
    return None


def _skip_foreign_methods(app, what, name, obj, skip, options):
    """Document only the methods that pneumoclf defines.

    The estimators inherit plumbing from scikit-learn (``set_fit_request``,
    ``set_partial_fit_request``, ...) whose docstrings
    refer to those projects' own pages; ``get_params``, ``set_params`` and
    ``score`` behave as in any scikit-learn estimator.
    """
    if what != "class" or not callable(obj):
        return None
    module = getattr(obj, "__module__", None) or ""
    if not module.startswith("pneumoclf"):
        return True
    return None


_PARAMETER_LINE = re.compile(r"^\s*\*\*[\w, *]+\*\* : ")
_TRAILING_DOUBLE_UNDERSCORE = re.compile(r"(?<=\w)__(?!\w)")


def _escape_step_prefixes(app, what, name, obj, options, lines):
    """Keep defaults such as ``prefix : str, default="cnn__"`` literal.

    numpydoc renders a parameter's type line as reStructuredText, where a word
    ending in ``__`` is an anonymous hyperlink; pipeline step prefixes end so.
    """
    for index, line in enumerate(lines):
        if _PARAMETER_LINE.match(line):
            lines[index] = _TRAILING_DOUBLE_UNDERSCORE.sub(r"\\_\\_", line)


# -- Command-line reference ----------------------------------------------------------


def _write_cli_reference(path):
    """Write the ``--help`` of the ``pneumoclf`` command and of each subcommand.

    ``user_guide/cli.rst`` includes the file, so that the reference follows the
    parser: a new subcommand or option appears without editing the page.
    """
    from pneumoclf.cli import build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps the help text to this width
    try:
        parser = build_parser()
        (subcommands,) = (
            action
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
        )
        helps = [("pneumoclf --help", parser.format_help())] + [
            (f"pneumoclf {name} --help", subparser.format_help())
            for name, subparser in subcommands.choices.items()
        ]
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    text = "".join(
        f"{title}\n{'~' * len(title)}\n\n.. code-block:: text\n\n"
        f"{textwrap.indent(help_text.rstrip(), '   ')}\n\n"
        for title, help_text in helps
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Rewriting an unchanged file would make Sphinx read the page again.
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


_write_cli_reference(Path(__file__).parent / "generated" / "cli_reference.inc")


# -- Links to other projects --------------------------------------------------------

# Keras is not here: keras.io is not built with Sphinx and publishes no inventory.
_INTERSPHINX = {
    "python": "https://docs.python.org/3",
    "numpy": "https://numpy.org/doc/stable",
    "sklearn": "https://scikit-learn.org/stable",
    "optuna": "https://optuna.readthedocs.io/en/stable",
    "optuna_integration": "https://optuna-integration.readthedocs.io/en/stable",
    "matplotlib": "https://matplotlib.org/stable",
}


def _reachable(url):
    try:
        with urllib.request.urlopen(f"{url}/objects.inv", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _intersphinx_mapping(projects):
    """The projects whose inventory can be read now.

    An inventory that cannot be downloaded is a warning in Sphinx, which fails a
    build run with ``-W``; an offline build leaves those links out instead.
    """
    with ThreadPoolExecutor(len(projects)) as pool:
        reachable = dict(
            zip(projects, pool.map(_reachable, projects.values()), strict=True)
        )
    offline = sorted(name for name, ok in reachable.items() if not ok)
    if offline:
        logger.info(
            "intersphinx: no link to %s (inventory not reachable)", ", ".join(offline)
        )
    return {name: (url, None) for name, url in projects.items() if reachable[name]}


intersphinx_mapping = _intersphinx_mapping(_INTERSPHINX)
intersphinx_timeout = 10

# -- Example gallery -----------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Every plot_*.py is run during the build, so the pages show its real output.
    "filename_pattern": r"/plot_",
    "within_subsection_order": ExplicitOrder(
        [
            "plot_quickstart.py",
            "plot_threshold_tuning.py",
            "plot_grouped_cv.py",
            "plot_optuna_search.py",
            "*",
        ]
    ),
    "doc_module": ("pneumoclf",),
    "backreferences_dir": "generated/backreferences",
    "show_memory": False,
    "remove_config_comments": True,
    "min_reported_time": 5,
    "download_all_examples": False,
}

# -- HTML ----------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"pneumoclf {release}"
html_theme_options = {
    "github_url": "https://github.com/pneumoclf/pneumoclf",
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_context = {"default_mode": "auto"}
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["code_blocks.css"]


def setup(app):
    # After numpydoc (priority 500), which writes the type lines.
    app.connect("autodoc-process-docstring", _escape_step_prefixes, priority=600)
    app.connect("autodoc-skip-member", _skip_foreign_methods)
    app.connect("missing-reference", _resolve_exported_name)
