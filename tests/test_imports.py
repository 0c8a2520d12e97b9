"""No module of the package imports another module's private (underscore) names.

The direction of imports between subpackages is checked in ``tests/test_import_layering.py``.
"""

import ast
import pathlib

import tf_mmcl

PACKAGE_DIR = pathlib.Path(tf_mmcl.__file__).parent


def _imports(path):
    """(module, name) for every ``from module import name`` in ``path`` (relative ones resolved)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(PACKAGE_DIR.parent).parent.parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            for alias in node.names:
                yield module, alias.name


def test_no_module_imports_private_names_of_another():
    found = set()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for module, name in _imports(path):
            if module.startswith("tf_mmcl") and name.startswith("_") and not name.startswith("__"):
                found.add((path.relative_to(PACKAGE_DIR).as_posix(), module, name))
    assert found == set(), "import the public name instead (or make the name public)"
