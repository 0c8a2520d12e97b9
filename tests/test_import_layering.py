"""The core packages import only downward: ops <- losses <- layers (<- models, data, ...).

``tf_mmcl.ops`` imports no other tf_mmcl package, ``tf_mmcl.losses`` only ``ops`` (and itself),
``tf_mmcl.layers`` only ``ops`` and ``losses`` (and itself) -- in particular losses never import
layers and layers never import ``tf_mmcl.data``. Every import statement counts, also those inside
functions (checked by parsing the sources, not by importing them).
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "tf_mmcl"

# tf_mmcl.keys (the batch-key protocol: names only) imports nothing and may be used by all.
ALLOWED = {
    "ops": {"ops"},
    "losses": {"ops", "losses", "keys"},
    "layers": {"ops", "losses", "layers", "keys"},
}


def tf_mmcl_imports(path):
    """(line, subpackage) of every ``tf_mmcl.<subpackage>`` import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + (
                [f"{node.module}.{a.name}" for a in node.names] if node.module == "tf_mmcl" else []
            )
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tf_mmcl" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_downward(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources under {ROOT / package}"
    bad = [
        f"{f.relative_to(ROOT.parent)}:{line} imports tf_mmcl.{sub}"
        for f in files
        for line, sub in tf_mmcl_imports(f)
        if sub not in ALLOWED[package]
    ]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_key_protocol_imports_no_tf_mmcl_module():
    assert tf_mmcl_imports(ROOT / "keys.py") == []


def test_checker_sees_imports_inside_functions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "import os\n\ndef f():\n    from tf_mmcl.layers.gate import ContrastiveGate\n"
        "    import tf_mmcl.data.audio\n    from tf_mmcl import models\n"
    )
    assert tf_mmcl_imports(src) == [(4, "layers"), (5, "data"), (6, "models")]
