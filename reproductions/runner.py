"""Runs registered experiments and assembles docs/results.md from their JSON records.

Each run writes ``<output_dir>/results/<name>.json`` and ``<output_dir>/plots/results_<name>.png``;
:func:`assemble_markdown` then rebuilds the Markdown from *every* JSON record present, so running
one experiment (quick or full) replaces only its own section.
"""

from __future__ import annotations

import copy
import datetime
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from reproductions import common
from reproductions.base import EXPERIMENTS, get_experiment
from reproductions.record_parts import merge_records, strip_output_flags
from reproductions.seed_store import SeedStore, print_flushed, to_json_value
from tf_mmcl.training.files import CorruptFileError, atomic_path, read_json, write_text

__all__ = ["load_config", "experiment_name", "run_experiment", "assemble_markdown", "resummarize", "merge_from"]

RESULTS_SUBDIR = "results"
PLOTS_SUBDIR = "plots"
CONFIG_DIR = "configs/reproduce"  # relative to the repository root, as the records' commands write it
_REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def config_file_of(name: str) -> Path:
    """The absolute path of experiment ``name``'s config file (``configs/reproduce/<name>.py``)."""
    return _REPOSITORY_ROOT / CONFIG_DIR / f"{name}.py"


def _split(config_file: str | os.PathLike) -> tuple[str, str | None]:
    path, colon, arg = os.fspath(config_file).partition(":")
    return path, (arg if colon else None)


def experiment_name(config_file: str | os.PathLike) -> str:
    """The experiment a config file is for: its file name without ``.py`` (``symile_xor``)."""
    return Path(_split(config_file)[0]).stem


def load_config(
    config_file: str | os.PathLike, overrides: Mapping[str, Any] | None = None
) -> ml_collections.ConfigDict:
    """``get_config(<variant>)`` of an experiment's config file, with ``overrides`` set.

    The same file and variant syntax as ``tools/reproduce.py --config``, from Python.

    Args:
        config_file: ``<path>.py`` for the full config or ``<path>.py:<variant>`` for a named
            variant, e.g. ``configs/reproduce/symile_xor.py:quick``.
        overrides: ``{dotted key: value}`` set on the loaded config (Python values, as
            ``--config.<key>=<value>`` on the command line), e.g. ``{"steps": 50}``.

    Returns:
        The config (unlocked).

    Raises:
        ValueError: a missing file, no ``get_config``, an unknown variant or an unknown key.
    """
    path, arg = _split(config_file)
    if not os.path.isfile(path):
        raise ValueError(
            f"Config file {path!r} does not exist; the experiments' configs are configs/reproduce/<experiment>.py "
            "in the repository (e.g. configs/reproduce/symile_xor.py:quick)."
        )
    spec = importlib.util.spec_from_file_location(f"reproduce_config_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
        raise ValueError(f"{path} must define get_config(arg=None).")
    config = module.get_config(arg) if arg is not None else module.get_config()
    return _with_overrides(config, overrides)


def _with_overrides(
    config: ml_collections.ConfigDict, overrides: Mapping[str, Any] | None
) -> ml_collections.ConfigDict:
    """An unlocked copy of ``config`` with ``{dotted key: value}`` set; an unknown key is an error.

    Raises:
        ValueError: for a key the config does not have (naming its keys) or a value of the wrong type.
    """
    config = copy.deepcopy(config)
    config.unlock()
    for key, value in dict(overrides or {}).items():
        node, parts = config, str(key).split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
                where = ".".join(parts[:depth]) or "the config"
                raise ValueError(
                    f"Override of unknown key {key!r}: {where} has no key {part!r}"
                    + (f" (its keys: {known})." if known else ".")
                )
            if depth < len(parts) - 1:
                node = node[part]
        try:
            node[parts[-1]] = value
        except TypeError as e:
            raise ValueError(f"Override {key}={value!r}: {e}") from None
    return config


def _init_seed_worker(threads: int) -> None:
    # A worker must not outlive the run (killing only the parent would leave it training on).
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except OSError:
            pass
    # Each worker process gets its share of the cores: two TF runtimes each spinning up one
    # thread pool per core would oversubscribe a small machine and run slower than one.
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _run_seed(experiment, config, seed: int, log, units) -> dict:
    """``experiment.run_seed`` with the seed's unit store (None: no resume) bound while it runs."""
    experiment.units = units
    try:
        return experiment.run_seed(config, seed, log)
    finally:
        experiment.units = None


def _run_seed_in_worker(name: str, config, seed: int, units) -> dict:
    import reproductions as experiments  # noqa: F401  (registers the experiments in a fresh process)

    return _run_seed(get_experiment(name), config, seed, print_flushed, units)


def _run_seeds(experiment, config, num_seeds: int, jobs: int, log, store: SeedStore | None = None) -> tuple:
    """``(per-seed results in seed order, the seeds taken from store)``.

    Seeds ``store`` already holds (a killed run of the same command) are not run again; each
    seed run now is saved to ``store`` as soon as it finishes, and within a seed each unit the
    experiment names (:meth:`Experiment.resumable`) as soon as it finishes. The others run in
    ``jobs`` processes when ``jobs > 1``. Every result is returned as it reads back from JSON.
    """
    done = store.load(num_seeds) if store is not None else {}
    resumed = sorted(done)
    if resumed:
        log(f"[{experiment.name}] resuming: seed(s) {resumed} finished earlier by this command ({store.directory})")
    todo = [seed for seed in range(num_seeds) if seed not in done]

    def units(seed):
        return store.units(seed) if store is not None else None

    def finished(seed, result):
        result = to_json_value(result, _json_default)
        if store is not None:
            store.save(seed, result)
        done[seed] = result

    jobs = max(1, min(int(jobs), len(todo)))
    if jobs <= 1:
        for seed in todo:
            finished(seed, _run_seed(experiment, config, seed, log, units(seed)))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // jobs)
        log(f"[{experiment.name}] {len(todo)} seeds in {jobs} processes, {threads} thread(s) each")
        # "spawn": a forked TensorFlow runtime (thread pools, locks) is not safe to reuse.
        with ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_seed_worker,
            initargs=(threads,),
        ) as pool:
            futures = {
                pool.submit(_run_seed_in_worker, experiment.name, config, seed, units(seed)): seed for seed in todo
            }
            for future in as_completed(futures):  # saved as each finishes, not when the last does
                finished(futures[future], future.result())
    return [done[seed] for seed in range(num_seeds)], resumed


def run_experiment(
    config_file: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
    seeds: int | None = None,
    output_dir: str = "docs",
    command: str = "",
    log: Callable[[str], None] = print,
    jobs: int = 1,
    config: ml_collections.ConfigDict | None = None,
    resume: bool = True,
    merge: bool = True,
) -> dict:
    """Runs one experiment over its seeds and writes its JSON record and plot.

    Args:
        config_file: the experiment's config file, ``<dir>/<experiment>.py`` (full run) or
            ``<dir>/<experiment>.py:quick`` (its quick variant: fewer seeds/steps/points), e.g.
            ``configs/reproduce/symile_xor.py:quick``; the file name is the experiment's name.
        overrides: ``{dotted key: value}`` set on the config (recorded too), e.g. ``{"steps": 50}``.
        seeds: number of seeds (0..seeds-1); default the config's ``num_seeds``.
        output_dir: where ``results/<name>.json`` and ``plots/results_<name>.png`` go.
        command: the command line, recorded in the section header.
        log: progress logger.
        jobs: seeds run in this many worker processes at once (each seed's result is the same
            as in a sequential run up to floating-point summation order; the record's
            ``wall_time_s`` is the parallel wall time).
        config: the config of ``config_file`` already loaded (as ``tools/reproduce.py``'s
            ``--config`` flag does); default: loaded from ``config_file``.
        resume: reuse the seeds a killed run of the same experiment, config and code finished
            (kept in ``<output_dir>/results/.seeds/`` until the record is written); False runs
            every seed afresh and discards them.
        merge: for an experiment with parts (``parts_key``, e.g. m3_digits_wide's
            ``dataset_configs``), a run of some parts is joined into the record at
            ``<output_dir>/results/<name>.json`` that holds the others when both measure the same
            thing (:mod:`reproductions.record_parts`); False replaces that record.

    Returns:
        The JSON record.
    """
    name = experiment_name(config_file)
    experiment = get_experiment(name)
    variant = _split(config_file)[1] or None
    overrides = dict(overrides or {})
    config = _with_overrides(config, overrides) if config is not None else load_config(config_file, overrides)
    quick = variant == "quick"
    num_seeds = int(seeds if seeds is not None else config.num_seeds)
    if num_seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {num_seeds}.")
    out = Path(output_dir)
    (out / RESULTS_SUBDIR).mkdir(parents=True, exist_ok=True)
    (out / PLOTS_SUBDIR).mkdir(parents=True, exist_ok=True)
    machine = common.machine_description()
    log(f"[{name}] {variant or 'full'} run, {num_seeds} seed(s)")
    store = SeedStore(out / RESULTS_SUBDIR, name, config.to_dict(), _json_default, log)
    if not resume:
        store.clear()
    with common.Timer() as timer:
        per_seed, resumed = _run_seeds(experiment, config, num_seeds, jobs, log, store)
    record = {
        "experiment": name,
        "title": experiment.title,
        "source": experiment.source,
        "claim": experiment.claim,
        "quick": quick,
        "num_seeds": num_seeds,
        "jobs": max(1, min(int(jobs), num_seeds)),
        "command": command,
        "overrides": overrides,
        "machine": machine,
        "wall_time_s": round(timer.seconds, 1),
        "resumed_seeds": resumed,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "code_digest": store.code_digest,
        "config": to_json_value(config.to_dict(), _json_default),
        "per_seed": per_seed,
        "plot": f"{PLOTS_SUBDIR}/results_{name}.png",
    }
    path = out / RESULTS_SUBDIR / f"{name}.json"
    if merge and experiment.parts_key:
        record = _joined_with_record_at(path, record, experiment, config_file, log)
    _write_record(out, path, record, experiment)
    store.clear()  # the record holds every seed now
    log(f"[{name}] done in {timer.seconds:.0f}s -> {path}")
    return record


def _write_record(out: Path, path: Path, record: dict, experiment) -> None:
    """Summarises ``record``, draws its plot and writes both (each atomically)."""
    config = _to_config(record["config"])
    record.update(experiment.summarize(record["per_seed"], config))
    with atomic_path(out / record["plot"]) as tmp:  # a killed run leaves the previous plot, not half of one
        experiment.plot(record["per_seed"], config, tmp)
    write_text(path, json.dumps(record, indent=1, default=_json_default) + "\n")


def _joined_with_record_at(path: Path, record: dict, experiment, config_file, log) -> dict:
    """``record`` joined with the record already at ``path`` (its other parts), or ``record`` itself."""
    if not path.exists():
        return record
    try:
        kept = read_json(path, f"the record of {record['experiment']}")
    except CorruptFileError as e:
        log(f"[{record['experiment']}] {e}; it is replaced.")
        return record
    default_parts = list(load_config(_split(config_file)[0])[experiment.parts_key])
    joined, why = merge_records(kept, record, experiment, default_parts)
    key = experiment.parts_key
    if joined is None:
        log(f"[{record['experiment']}] the record at {path} is replaced, not joined: {why}.")
        return record
    log(
        f"[{record['experiment']}] {key} {record['config'][key]} joined with {path}, which holds "
        f"{[p for p in kept['config'][key] if p not in record['config'][key]]}: the record has {joined['config'][key]}."
    )
    return joined


def merge_from(source_dir: str, output_dir: str = "docs", names: Sequence[str] | None = None, log=print) -> list:
    """Joins the records under ``<source_dir>/results`` into those under ``<output_dir>/results``.

    For parts run elsewhere (another machine, another checkout, ``--output_dir``): a record of an
    experiment with parts is joined with the record of its other parts as :func:`run_experiment`
    does; any other record, or one that measures something else, replaces the record there. The
    joined runs' commands lose their ``--output_dir``/``--results_md``. Plots are redrawn.

    Returns:
        The names of the records written.

    Raises:
        ValueError: when ``source_dir`` holds no record (of ``names``).
    """
    src, out = Path(source_dir), Path(output_dir)
    (out / RESULTS_SUBDIR).mkdir(parents=True, exist_ok=True)
    (out / PLOTS_SUBDIR).mkdir(parents=True, exist_ok=True)
    done = []
    for source in sorted((src / RESULTS_SUBDIR).glob("*.json")):
        record = read_json(source, "a record to merge")
        name = record.get("experiment")
        if (names and name not in names) or name not in EXPERIMENTS:
            continue
        experiment = get_experiment(name)
        record["command"] = strip_output_flags(record.get("command", ""))
        for run in record.get("runs", []):
            run["command"] = strip_output_flags(run.get("command", ""))
        path = out / RESULTS_SUBDIR / f"{name}.json"
        if experiment.parts_key:
            record = _joined_with_record_at(path, record, experiment, config_file_of(name), log)
        _write_record(out, path, record, experiment)
        log(f"[{name}] {source} -> {path}")
        done.append(name)
    if not done:
        which = f" of {list(names)}" if names else ""
        raise ValueError(f"No experiment record{which} under {src / RESULTS_SUBDIR}.")
    return done


def resummarize(output_dir: str = "docs", names: Sequence[str] | None = None, log=print) -> list:
    """Recomputes tables, findings, verdict and plot of stored records from their per-seed data.

    Use after changing an experiment's ``summarize``/``plot`` (not its measurements): nothing is
    retrained, the measurements in ``per_seed`` and the recorded config are reused.

    Returns:
        The names of the records refreshed.
    """
    out = Path(output_dir)
    done = []
    for path in sorted((out / RESULTS_SUBDIR).glob("*.json")):
        record = json.loads(path.read_text())
        name = record["experiment"]
        if (names and name not in names) or name not in EXPERIMENTS:
            continue
        _write_record(out, path, record, get_experiment(name))
        log(f"[{name}] re-summarised from {path}")
        done.append(name)
    return done


def _to_config(value):
    """A ConfigDict from a recorded config, with dicts nested in lists converted too."""

    def convert(v):
        if isinstance(v, dict):
            return ml_collections.ConfigDict({k: convert(x) for k, x in v.items()})
        if isinstance(v, list):
            return [convert(x) for x in v]
        return v

    return convert(value)


def _json_default(value):
    import numpy as np

    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, ml_collections.ConfigDict):
        return value.to_dict()
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")


def _table_md(table) -> list:
    lines = [f"*{table['caption']}*", ""] if table.get("caption") else []
    lines.append("| " + " | ".join(str(h) for h in table["header"]) + " |")
    lines.append("|" + "|".join("---" for _ in table["header"]) + "|")
    for row in table["rows"]:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return lines + [""]


def _runs_md(record) -> list:
    """The runs a joined record's parts come from (none for a record measured by one run)."""
    runs = record.get("runs") or []
    if len(runs) < 2:
        return []
    key = get_experiment(record["experiment"]).parts_key if record["experiment"] in EXPERIMENTS else "parts"
    lines = ["- **Runs**: the command above runs every part at once; the parts were measured by separate runs of it:"]
    for run in runs:
        lines.append(
            f"  - `{key}` = {', '.join(run['parts'])}: `{run['command'] or '(API call)'}`, {run['date']}, "
            f"{float(run['wall_time_s']):.0f} s"
            + (f" ({run['jobs']} seeds at a time)" if run.get("jobs", 1) > 1 else "")
            + (f", seed(s) {run['resumed_seeds']} resumed from an interrupted run" if run.get("resumed_seeds") else "")
            + f"; {run['machine']}"
        )
    return lines


def _section_md(record, md_dir: Path, output_dir: Path) -> list:
    kind = "QUICK run (reduced seeds/steps: indicative only)" if record["quick"] else "full run"
    lines = [f"## {record['title']}", ""]
    lines += [
        f"- **Run**: {kind}, {record['num_seeds']} seed(s), {record['date']}",
        f"- **Machine**: {record['machine']}",
        f"- **Wall time**: {record['wall_time_s']:.0f} s"
        + (f" ({record['jobs']} seeds at a time, in parallel processes)" if record.get("jobs", 1) > 1 else "")
        + (
            f"; seed(s) {record['resumed_seeds']} were finished by an earlier, interrupted run of the same command "
            "(same config and code) and are not in this time"
            if record.get("resumed_seeds")
            else ""
        ),
        f"- **Command**: `{record['command']}`" if record["command"] else "- **Command**: (API call)",
        *_runs_md(record),
        f"- **Source**: {record['source']}",
        f"- **Claim**: {record['claim']}",
        f"- **Verdict**: {record['verdict']}",
        "",
    ]
    for table in record["tables"]:
        lines += _table_md(table)
    if record.get("findings"):
        lines += ["**Findings and disagreements**", ""]
        lines += [f"- {f}" for f in record["findings"]] + [""]
    plot = output_dir / record["plot"]
    rel = os.path.relpath(plot, md_dir)
    lines += [f"![{record['experiment']}]({rel})", ""]
    cfg = json.dumps(record["config"], sort_keys=True, default=_json_default)
    lines += ["<details><summary>Config</summary>", "", f"`{cfg}`", "", "</details>", ""]
    return lines


def assemble_markdown(output_dir: str = "docs", results_md: str | None = None) -> str:
    """Rebuilds the results Markdown from every ``<output_dir>/results/*.json``.

    Sections come in registry order (the report order), then any other records by name.

    Returns:
        The path of the written Markdown file.

    Raises:
        ValueError: if there is no record to assemble.
    """
    out = Path(output_dir)
    md_path = Path(results_md) if results_md else out / "results.md"
    records = {}
    for path in sorted((out / RESULTS_SUBDIR).glob("*.json")):
        record = json.loads(path.read_text())
        records[record["experiment"]] = record
    if not records:
        raise ValueError(f"No experiment records under {out / RESULTS_SUBDIR}; run an experiment first.")
    order = [n for n in EXPERIMENTS if n in records] + sorted(n for n in records if n not in EXPERIMENTS)
    lines = [
        "# Reproduced results",
        "",
        "<!-- Generated by tools/reproduce.py from docs/results/*.json: do not edit by hand. -->",
        "",
        "Regenerate everything with `python tools/reproduce.py --jobs=3` (full; `--jobs` runs "
        "the seeds in parallel processes, the total wall time is in the table) or "
        "`python tools/reproduce.py --quick`; one experiment with `--experiments=<name>` "
        "(its section is replaced, the others are kept). Numbers are ours, measured by the "
        "command in each section; the paper's numbers are shown beside them where the paper "
        "gives them. Sections marked QUICK used reduced seeds/steps and are indicative only.",
        "",
        "| experiment | run | seeds | wall time | verdict |",
        "|---|---|---|---|---|",
    ]
    for name in order:
        r = records[name]
        lines.append(
            f"| {r['title']} | {'quick' if r['quick'] else 'full'} | {r['num_seeds']} | "
            f"{r['wall_time_s']:.0f} s | {r['verdict']} |"
        )
    total = sum(float(r["wall_time_s"]) for r in records.values())
    lines += [f"| **total** | | | {total:.0f} s ({total / 60:.0f} min) | |", ""]
    md_path.parent.mkdir(parents=True, exist_ok=True)
    for name in order:
        lines += _section_md(records[name], md_path.parent.resolve(), out.resolve())
    write_text(md_path, "\n".join(lines))
    return str(md_path)
