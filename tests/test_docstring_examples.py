"""Every ``>>>`` example in a docstring of ``tf_mmcl`` runs and prints what it shows.

The modules are found on disk, so a new module is checked without being listed here. Each
module's examples run with a fresh namespace holding the module's globals (as
``doctest.testmod`` does). A module whose source contains ``>>>`` must yield at least one
example, so an example hidden from the doctest finder (e.g. in a docstring the finder does not
reach) fails instead of being skipped silently.
"""

import doctest
import importlib
import pathlib

import pytest

import tf_mmcl

PACKAGE_DIR = pathlib.Path(tf_mmcl.__file__).parent

# Modules whose examples are not run, each with the reason. Keep this empty unless an example
# needs something a test run cannot have (a network download, a GPU).
SKIPPED = {
    # `python -m tf_mmcl.datasets.m3_digits` entry point: importing it runs the CLI.
    "tf_mmcl.datasets.m3_digits.__main__": "importing the module runs its command line",
}

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names():
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


MODULES = _module_names()


def test_modules_are_found():
    assert "tf_mmcl.ops.similarity" in MODULES
    assert "tf_mmcl.layers.mlp_encoder" in MODULES
    assert len(MODULES) > 50


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name in SKIPPED:
        pytest.skip(SKIPPED[name])
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, name) if t.examples]
    source = pathlib.Path(module.__file__).read_text()
    if ">>>" in source:
        assert tests, f"{name} contains '>>>' but the doctest finder collected no example"
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
