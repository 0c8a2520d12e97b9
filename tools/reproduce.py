r"""Reproduces the papers' results and regenerates docs/results.md.

Usage:
  python tools/reproduce.py                        # every experiment, full settings
  python tools/reproduce.py --quick                # every experiment, reduced seeds/steps
  python tools/reproduce.py --experiments=symile_xor,confu_xor --seeds=5
  python tools/reproduce.py --experiments=symile_xor --quick --set=steps=50 --set=p_hats=[1.0]
  python tools/reproduce.py --assemble_only        # rebuild the Markdown from docs/results/*.json
  python tools/reproduce.py --resummarize          # re-derive tables/plots from the stored measurements

Each experiment writes <output_dir>/results/<name>.json and <output_dir>/plots/results_<name>.png;
the Markdown is then assembled from every JSON present, so running some experiments keeps the
others' sections. <output_dir> defaults to docs (the committed results) for full runs and to
workdir/reproduce_quick (git-ignored) for --quick runs, so a quick check never overwrites the
committed results; pass --output_dir=docs to regenerate them on purpose.
The experiment logic lives in the top-level reproductions/ package; configs in configs/reproduce/.
"""

import os
import shlex
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _cli  # noqa: E402

FLAGS = flags.FLAGS
_FULL_OUTPUT_DIR = "docs"  # the committed results
_QUICK_OUTPUT_DIR = os.path.join("workdir", "reproduce_quick")  # git-ignored: quick runs are scratch
flags.DEFINE_list("experiments", None, "Comma-separated experiment names (default: all registered).")
flags.DEFINE_bool("quick", False, "Use each config's quick overrides (fewer seeds/steps/points).")
flags.DEFINE_integer("seeds", None, "Number of seeds (default: the config's num_seeds).")
flags.DEFINE_string(
    "output_dir",
    None,
    "Where results/<name>.json, plots/ and results.md are written "
    f"(default: {_FULL_OUTPUT_DIR} for full runs, {_QUICK_OUTPUT_DIR} for --quick runs).",
)
flags.DEFINE_string("results_md", None, "Markdown path (default: <output_dir>/results.md).")
flags.DEFINE_multi_string("set", [], "Config override key=value (Python literal), repeatable.")
flags.DEFINE_bool("assemble_only", False, "Only rebuild the Markdown from existing JSON records.")
flags.DEFINE_bool(
    "resummarize",
    False,
    "Recompute tables/verdicts/plots of the stored records (of "
    "--experiments, default all) from their per-seed measurements, without retraining.",
)
flags.DEFINE_integer(
    "jobs", 1, "Seeds run in parallel worker processes (each gets cores // jobs threads).", lower_bound=1
)
flags.DEFINE_bool("list", False, "List the registered experiments and exit.")


def main(argv):
    if len(argv) > 1:
        _cli.fail("reproduce.py", f"unexpected arguments {argv[1:]}; every setting is a flag (--help lists them).")
    try:
        return _run()
    except (ValueError, FileNotFoundError, PermissionError) as e:
        _cli.fail("reproduce.py", e)


def _run():
    output_dir = FLAGS.output_dir or (_QUICK_OUTPUT_DIR if FLAGS.quick else _FULL_OUTPUT_DIR)
    import reproductions as experiments

    if FLAGS.list:
        for name, cls in experiments.EXPERIMENTS.items():
            print(f"{name}: {cls.title}")
        return 0
    if FLAGS.resummarize:
        from reproductions import runner

        runner.resummarize(output_dir, FLAGS.experiments)
    elif not FLAGS.assemble_only:
        names = FLAGS.experiments or list(experiments.EXPERIMENTS)
        for name in names:  # fail fast on a typo, before hours of training
            experiments.get_experiment(name)
        command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
        start = time.time()
        for name in names:
            experiments.run_experiment(
                name,
                quick=FLAGS.quick,
                seeds=FLAGS.seeds,
                output_dir=output_dir,
                command=command,
                overrides=FLAGS.set,
                jobs=FLAGS.jobs,
            )
            experiments.assemble_markdown(output_dir, FLAGS.results_md)
        print(f"All done in {time.time() - start:.0f}s.")
    path = experiments.assemble_markdown(output_dir, FLAGS.results_md)
    print(
        f"Wrote {path} (records in {os.path.join(output_dir, 'results')}, plots in {os.path.join(output_dir, 'plots')})"
    )
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=_cli.flags_parser("reproduce.py"))
