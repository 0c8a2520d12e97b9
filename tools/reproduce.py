r"""Reproduces the papers' results and regenerates docs/results.md.

Usage:
  python tools/reproduce.py                        # every experiment, full settings
  python tools/reproduce.py --quick                # every experiment's quick variant (fewer seeds/steps)
  python tools/reproduce.py --experiments=symile_xor,confu_xor --seeds=5
  python tools/reproduce.py --config=configs/reproduce/symile_xor.py:quick --config.steps=50 \
      --config.p_hats=[1.0]                        # one experiment, with settings changed
  python tools/reproduce.py --assemble_only        # rebuild the Markdown from docs/results/*.json
  python tools/reproduce.py --resummarize          # re-derive tables/plots from the stored measurements
  python tools/reproduce.py --merge_from=workdir/w10  # join records run elsewhere into docs/results

Each experiment's settings are its config file ``configs/reproduce/<name>.py``: ``get_config()`` is
the full run, ``get_config("quick")`` (``<name>.py:quick``) the quick variant. ``--experiments``
(default: all) with ``--quick`` runs those files as they are. To change a setting, name one
experiment's config with ``--config=configs/reproduce/<name>.py[:quick]`` and override any of its
keys with ``--config.<key>=<value>`` (nested keys too: ``--config.encoder.output_dim=16``; a list
takes a Python list: ``--config.p_hats=[0.5,1.0]``; an unknown key is an error), the syntax of
``tools/train.py``. ``--config`` runs that one experiment (the file name is the experiment's), so
it does not go with ``--experiments`` or ``--quick``.

Each experiment writes <output_dir>/results/<name>.json and <output_dir>/plots/results_<name>.png;
the Markdown is then assembled from every JSON present, so running some experiments keeps the
others' sections. Each record holds the command that reproduces it alone
(``python tools/reproduce.py --config=configs/reproduce/<name>.py[:quick] ...``). <output_dir>
defaults to docs (the committed results) for full runs and to workdir/reproduce_quick
(git-ignored) for quick runs, so a quick check never overwrites the committed results; pass
--output_dir=docs to regenerate them on purpose.
A killed run resumes: each finished seed is kept in <output_dir>/results/.seeds/ until the record
is written, and the same command trains only the seeds still missing (never seeds of another
config or of other code); within an unfinished seed of m3_digits* and misalignment each finished
training is kept too, so the seed restarts at its first unfinished training; --noresume starts
afresh.
An experiment with parts (m3_digits, m3_digits_wide: one width per entry of dataset_configs) can
be run one part at a time: ``--config.dataset_configs="['symile_m3_10']"`` joins w = 10 into the
record that holds w = 5 (same variant, seeds and config otherwise; --nomerge replaces it), and
``--merge_from=<dir>`` joins records of parts run elsewhere with ``--output_dir=<dir>``.
The experiment logic lives in the top-level reproductions/ package; configs in configs/reproduce/.
"""

import os
import shlex
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _cli  # noqa: E402

_PROG = "reproduce.py"
FLAGS = flags.FLAGS
_FULL_OUTPUT_DIR = "docs"  # the committed results
_QUICK_OUTPUT_DIR = os.path.join("workdir", "reproduce_quick")  # git-ignored: quick runs are scratch
_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "One experiment's config file, configs/reproduce/<name>.py (full) or <name>.py:quick, whose keys "
    "--config.<key>=<value> overrides, e.g. --config=configs/reproduce/symile_xor.py:quick --config.steps=50.",
    lock_config=True,
)
flags.DEFINE_list(
    "experiments", None, "Comma-separated experiment names (default: all registered), run with their configs as is."
)
flags.DEFINE_bool("quick", False, "Run each of --experiments' quick variant (configs/reproduce/<name>.py:quick).")
flags.DEFINE_integer("seeds", None, "Number of seeds (default: the config's num_seeds).")
flags.DEFINE_string(
    "output_dir",
    None,
    "Where results/<name>.json, plots/ and results.md are written "
    f"(default: {_FULL_OUTPUT_DIR} for full runs, {_QUICK_OUTPUT_DIR} for quick runs).",
)
flags.DEFINE_string("results_md", None, "Markdown path (default: <output_dir>/results.md).")
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
flags.DEFINE_bool(
    "resume",
    True,
    "Reuse the seeds (and the trainings of an unfinished seed) that a killed run of the same experiment, "
    "config and code finished (kept in <output_dir>/results/.seeds/ until the record is written); "
    "--noresume runs every seed afresh.",
)
flags.DEFINE_bool(
    "merge",
    True,
    "A run of some parts of an experiment with parts (m3_digits, m3_digits_wide: --config.dataset_configs, one "
    "width each) is joined into the record that holds its other parts when both measure the same thing (same "
    "variant, seeds and config otherwise); --nomerge replaces that record.",
)
flags.DEFINE_string(
    "merge_from",
    None,
    "Join the records under <merge_from>/results (parts run elsewhere, e.g. with --output_dir on another "
    "machine) into --output_dir's, as --merge does, then rebuild the Markdown; trains nothing.",
)
flags.DEFINE_bool("list", False, "List the registered experiments and exit.")

_OVERRIDE_HELP = (
    "override a config key with --config.<key>=<value> after naming one experiment's config, e.g. "
    "--config=configs/reproduce/symile_xor.py:quick --config.steps=50 --config.p_hats=[1.0]"
)
_REMOVED = {"set": _OVERRIDE_HELP + "."}


def _config_given(args):
    return any(a in ("--config", "-config") or a.startswith(("--config=", "-config=")) for a in args)


def _parse_flags(argv):
    args = argv[1:]
    args = args[: args.index("--")] if "--" in args else args
    overrides = [a for a in args if a.startswith(("--config.", "-config.", "--noconfig.", "-noconfig."))]
    if overrides and not _config_given(args):
        _cli.fail(
            _PROG,
            f"{overrides[0].split('=', 1)[0]} overrides a key of the config named by --config; "
            "pass --config=configs/reproduce/<experiment>.py (or <experiment>.py:quick) before it.",
        )
    return _cli.parse_config_flags(_PROG, argv)


def main(argv):
    if len(argv) > 1:
        _cli.fail(_PROG, f"unexpected arguments {argv[1:]}; every setting is a flag (--help lists them).")
    try:
        return _run()
    except (ValueError, FileNotFoundError, PermissionError) as e:
        _cli.fail(_PROG, e)


def _relative(path):
    """``path`` (a file, or ``<file>:<variant>``) relative to the repository root when it lies inside.

    The recorded commands run from the root and hold no machine-local directories.
    """
    path, colon, arg = path.partition(":")
    full = os.path.abspath(path)
    if os.path.commonpath([full, _ROOT]) == _ROOT:
        path = os.path.relpath(full, _ROOT).replace(os.sep, "/")
    return path + colon + arg


def _command(config_file):
    """The command line that reproduces one experiment's record: its config file and the other flags."""
    kept, args, i = [], sys.argv[1:], 0
    while i < len(args):
        arg = args[i]
        name = arg.lstrip("-").split("=", 1)[0] if arg.startswith("-") else None
        separate = name in ("experiments", "config", "output_dir", "results_md") and "=" not in arg
        value = args[i + 1] if separate and i + 1 < len(args) else arg.partition("=")[2]
        if name in ("output_dir", "results_md"):
            kept.append(f"--{name}={_relative(value)}")
        elif name not in ("experiments", "config", "quick", "noquick", "resume", "noresume", "merge", "nomerge"):
            kept.append(arg)
        i += 2 if separate else 1
    return " ".join(["python", "tools/reproduce.py", *(shlex.quote(a) for a in [f"--config={config_file}", *kept])])


def _run():
    config_file = FLAGS["config"].config_filename if FLAGS["config"].present else None
    if config_file is not None:
        clash = [
            f"--{n}"
            for n in ("experiments", "quick", "assemble_only", "resummarize", "merge_from", "list")
            if FLAGS[n].value
        ]
        if clash:
            raise ValueError(
                f"--config runs the one experiment of its config file, so it does not go with {', '.join(clash)}; "
                "its variant follows the colon (--config=configs/reproduce/symile_xor.py:quick)."
            )
    quick = FLAGS.quick or (config_file is not None and config_file.partition(":")[2] == "quick")
    output_dir = FLAGS.output_dir or (_QUICK_OUTPUT_DIR if quick else _FULL_OUTPUT_DIR)
    import reproductions as experiments
    from reproductions import runner

    if FLAGS.list:
        for name, cls in experiments.EXPERIMENTS.items():
            print(f"{name}: {cls.title}")
        return 0
    if FLAGS.resummarize or FLAGS.merge_from:
        if FLAGS.merge_from:
            runner.merge_from(FLAGS.merge_from, output_dir, FLAGS.experiments)
        if FLAGS.resummarize:
            runner.resummarize(output_dir, FLAGS.experiments)
    elif not FLAGS.assemble_only:
        if config_file is not None:
            runs = [(_relative(config_file), config_file, _CONFIG.value)]
        else:
            names = FLAGS.experiments or list(experiments.EXPERIMENTS)
            for name in names:  # fail fast on a typo, before hours of training
                experiments.get_experiment(name)
            variant = ":quick" if FLAGS.quick else ""
            runs = [
                (f"{runner.CONFIG_DIR}/{n}.py{variant}", f"{runner.config_file_of(n)}{variant}", None) for n in names
            ]
        overrides = config_flags.get_override_values(FLAGS["config"]) if config_file is not None else {}
        start = time.time()
        for recorded, path, config in runs:
            experiments.run_experiment(
                path,
                config=config,
                overrides=overrides,
                seeds=FLAGS.seeds,
                output_dir=output_dir,
                command=_command(recorded),
                jobs=FLAGS.jobs,
                resume=FLAGS.resume,
                merge=FLAGS.merge,
            )
            experiments.assemble_markdown(output_dir, FLAGS.results_md)
        print(f"All done in {time.time() - start:.0f}s.")
    path = experiments.assemble_markdown(output_dir, FLAGS.results_md)
    print(
        f"Wrote {path} (records in {os.path.join(output_dir, 'results')}, plots in {os.path.join(output_dir, 'plots')})"
    )
    return 0


if __name__ == "__main__":
    app.run(
        main,
        flags_parser=_cli.flags_parser(
            _PROG,
            config_flag="config",
            parse=_parse_flags,
            config_example="configs/reproduce/symile_xor.py:quick",
            removed=_REMOVED,
        ),
    )
