"""Private: names that moved to another module keep working, with a warning."""

import importlib
import warnings

#: The release that removes the old names.
REMOVED_IN = "0.3"


def moved_attribute(module_name, name, moved):
    """Resolve ``module_name.name``, which moved to ``moved[name]``.

    For a module's ``__getattr__``: warns with a ``FutureWarning`` that names the
    new place, and imports it by name (it may sit above the old module).

    Raises
    ------
    AttributeError
        If ``name`` did not move.
    """
    if name not in moved:
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
    warnings.warn(
        f"{module_name}.{name} moved to {moved[name]}.{name}; the old name will be "
        f"removed in pneumoclf {REMOVED_IN}.",
        FutureWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(moved[name]), name)


def made_private(module_name, name, helpers):
    """Resolve ``module_name.name``, a public name that became a private helper.

    For a module's ``__getattr__``: warns with a ``FutureWarning`` and returns
    ``helpers[name]``.

    Raises
    ------
    AttributeError
        If ``name`` is not one of ``helpers``.
    """
    if name not in helpers:
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
    warnings.warn(
        f"{module_name}.{name} is a private helper now and will be removed from the "
        f"public API in pneumoclf {REMOVED_IN}.",
        FutureWarning,
        stacklevel=3,
    )
    return helpers[name]
