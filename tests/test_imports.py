"""The package's import rules: how the rooms may lean on each other.

No circle; no module takes another module's private names, unless from a private
module made to be shared (``_utils``, ``_compat``, ...); no module reaches into a
private module of another package; the classifier's private room serves the
classifier alone; scikit-learn's private names come in through ``_compat`` only.
"""

import ast
from pathlib import Path

import pytest

import pneumoclf

SOURCE = Path(pneumoclf.__file__).parent


def module_sources(root=SOURCE):
    """``{dotted module name: source}`` of every module under ``root``."""
    sources = {}
    for path in sorted(root.rglob("*.py")):
        parts = ("pneumoclf", *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        sources[".".join(parts)] = (path.read_text(encoding="utf-8"), path.name)
    return sources


def imports(sources):
    """``(importer, imported module, imported name)`` of every ``from`` import."""
    found = []
    for module, (source, file_name) in sources.items():
        package = module if file_name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if full in sources:
                    found.append((module, full, None))
                else:
                    found.append((module, target, alias.name))
    return found


def _is_private(name):
    return name.startswith("_") and not name.startswith("__")


def broken_rules(sources):
    """Every import that breaks a rule, in words."""
    broken = []
    for importer, module, name in imports(sources):
        parts = module.split(".")
        if parts[0] == "sklearn" and importer != "pneumoclf._compat":
            if any(map(_is_private, parts)) or (name and _is_private(name)):
                broken.append(
                    f"{importer} imports scikit-learn's private {module}.{name}"
                )
        if parts[0] != "pneumoclf" or module == importer:
            continue
        if module not in sources:
            broken.append(f"{importer} imports {module}, which does not exist")
        if importer.startswith(module + "."):
            continue  # a package's own __init__ or a module above
        owner = module.rsplit(".", 1)[0]
        in_owner = importer == owner or importer.startswith(owner + ".")
        if owner != "pneumoclf" and _is_private(parts[-1]) and not in_owner:
            broken.append(f"{importer} imports {module}, private to {owner}")
        if name and _is_private(name) and not _is_private(parts[-1]):
            broken.append(f"{importer} imports the private {module}.{name}")
        private_room = "pneumoclf._training"
        if (module == private_room or module.startswith(private_room + ".")) and not (
            importer == "pneumoclf.classifier" or importer.startswith(private_room)
        ):
            broken.append(f"{importer} imports {module}, which serves the classifier")
    return broken


def circles(sources):
    """Every import circle among the package's modules."""
    edges = {module: set() for module in sources}
    for importer, module, _ in imports(sources):
        if module in sources and module != importer:
            if not importer.startswith(module + "."):
                edges[importer].add(module)
    found, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(edges[module]):
            if state.get(imported) == "open":
                found.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return found


def test_the_package_keeps_its_import_rules():
    sources = module_sources()
    assert "pneumoclf._training.run" in sources  # the whole tree was read
    assert broken_rules(sources) == []
    assert circles(sources) == []


@pytest.mark.parametrize(
    ("importer", "source", "rule"),
    [
        ("pneumoclf.explain", "from .preprocessing._decode import x", "private to"),
        ("pneumoclf.tuning", "from .metrics import _resolve", "imports the private"),
        ("pneumoclf.persistence", "from ._training import x", "serves the classifier"),
        ("pneumoclf.report", "from sklearn.utils._param_validation import x", "scikit"),
        ("pneumoclf.metrics", "from sklearn.utils.validation import _check", "scikit"),
        ("pneumoclf.tuning._tune", "def f():\n    from .classifier import x", "exist"),
    ],
)
def test_each_rule_catches_what_it_forbids(importer, source, rule):
    sources = module_sources()
    sources[importer] = (source, f"{importer.rsplit('.', 1)[1]}.py")
    assert [line for line in broken_rules(sources) if rule in line]


def test_a_circle_is_caught():
    sources = module_sources()
    sources["pneumoclf.datasets"] = ("from .cli import main", "datasets.py")
    assert any("pneumoclf.datasets" in circle for circle in circles(sources))
