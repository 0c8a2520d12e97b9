#!/usr/bin/env python
"""Evaluate trained runs: ``python tools/evaluate.py --workdir DIR [--workdir DIR2 ...]``.

For each run writes ``DIR/eval/results.md`` (Markdown table of retrieval top-1 / Recall@k /
MRR per direction), ``results.json``, ``retrieval.png`` and ``training_curves.png`` (the PNGs
need the ``plot`` extra, matplotlib; without it they are skipped), and prints the table.
``--index_retrieval`` also ranks every test example's matching row among the
whole test split through ``tf_mmcl.retrieval.CandidateIndex`` (Recall@k, MRR; exact streamed
ranks, for splits too large for a dense matrix) into ``DIR/eval/index_retrieval.{md,json}``.
With several runs also prints a side-by-side table of their 1->1 and
(M-1)->1 top-1 and writes it, with a plot, to ``--compare_dir`` (``comparison.md``,
``comparison.png``).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/_cli.py, also under runpy
import _cli  # noqa: E402

_PROG = "evaluate.py"

_WORKDIRS = flags.DEFINE_multi_string("workdir", None, "A finished training run (repeat for several).")
_COMPARE_DIR = flags.DEFINE_string(
    "compare_dir", None, "Where the comparison of several runs goes (default: the first run's parent directory)."
)
_INDEX_RETRIEVAL = flags.DEFINE_bool(
    "index_retrieval",
    False,
    "Also rank every test example's matching row among the whole test split through "
    "tf_mmcl.retrieval.CandidateIndex (exact streamed ranks, memory bounded by the block, not "
    "N x N): writes DIR/eval/index_retrieval.{md,json}.",
)
_USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines drown the output
    if len(argv) > 1:
        _cli.fail(_PROG, f"unexpected arguments {argv[1:]}; pass each run as --workdir DIR.")
    from tf_mmcl import training  # here, not at the top: --help and flag errors need no TensorFlow

    try:
        results = {}
        for workdir in _WORKDIRS.value:
            result = training.evaluate(workdir)
            print(training.results_markdown(result, title=result["name"]))
            for key, path in result["paths"].items():
                print(f"  {key:16s} {path}")
            results[os.path.basename(os.path.normpath(workdir))] = result
            if _INDEX_RETRIEVAL.value:
                _index_retrieval(workdir, result["name"])
        if len(results) > 1:
            out = training.check_workdir(_COMPARE_DIR.value or os.path.dirname(os.path.abspath(_WORKDIRS.value[0])))
            table = training.comparison_markdown(results)
            with open(os.path.join(out, "comparison.md"), "w") as f:
                f.write(table)
            written = [os.path.join(out, "comparison.md")]
            if training.plotting_available():
                written.append(training.plot_comparison(results, os.path.join(out, "comparison.png")))
            print(table)
            print(f"  comparison       {', '.join(written)}")
    except _USER_ERRORS as e:
        _cli.fail(_PROG, e)


def _index_retrieval(workdir, name):
    import json

    from tf_mmcl import retrieval, training
    from tf_mmcl.training import files

    config, model = training.load_run(training.check_workdir(workdir, must_exist=True))
    arrays = training.build_dataset(config).as_numpy("test")
    result = retrieval.evaluate_split_with_index(model, arrays, ks=tuple(config.eval.ks))
    out = training.check_workdir(os.path.join(workdir, "eval"))
    table = training.results_markdown(result, title=f"{name}: whole test split through the index")
    paths = {
        "index_md": os.path.join(out, "index_retrieval.md"),
        "index_json": os.path.join(out, "index_retrieval.json"),
    }
    for path, text in ((paths["index_md"], table), (paths["index_json"], json.dumps(result, indent=1))):
        files.write_text(path, text)
    print(table)
    for key, path in paths.items():
        print(f"  {key:16s} {path}")


if __name__ == "__main__":
    app.run(main, flags_parser=_cli.flags_parser(_PROG, required=("workdir",)))
