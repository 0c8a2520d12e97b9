"""One record from runs of an experiment's separate parts (m3_digits_wide: w = 5, then w = 10).

Some experiments are a list of independent parts named by one config key (``m3_digits_wide``:
``dataset_configs``, one width each). A part can take an hour per seed, so a user runs one part
at a time (``--config.dataset_configs="['symile_m3_10']"``) or on another machine. Replacing the
record with each such run would lose the parts run before; :func:`merge_records` instead joins
the new run's parts into the record that holds the others.

Two records are joined only when they measure the same thing: same experiment, same variant
(full or quick), same number of seeds, and the same config apart from the parts key. Each part
keeps the run that measured it (command, date, machine, wall time, code digest) in the record's
``runs``; a part run again replaces its earlier measurement. The record's ``command`` is the one
command that regenerates every part at once.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

__all__ = ["merge_records", "runs_of", "command_for_parts", "strip_output_flags"]

# Flags that say where a run wrote its record, not what it measured.
_OUTPUT_FLAGS = ("--output_dir", "--results_md")


def runs_of(record: dict, parts_key: str) -> list:
    """The runs that measured ``record``'s parts: its ``runs``, or one run made of its own fields."""
    if record.get("runs"):
        return [dict(run) for run in record["runs"]]
    return [
        {
            "parts": list(record["config"][parts_key]),
            "command": record.get("command", ""),
            "date": record.get("date", ""),
            "machine": record.get("machine", ""),
            "wall_time_s": record.get("wall_time_s", 0.0),
            "jobs": record.get("jobs", 1),
            "resumed_seeds": list(record.get("resumed_seeds", [])),
            **({"code_digest": record["code_digest"]} if record.get("code_digest") else {}),
        }
    ]


def strip_output_flags(command: str) -> str:
    """``command`` without ``--output_dir``/``--results_md``: a run made elsewhere, joined here."""
    if not command:
        return command
    kept = [a for a in shlex.split(command) if not a.startswith(tuple(f + "=" for f in _OUTPUT_FLAGS))]
    return " ".join(shlex.quote(a) for a in kept)


def command_for_parts(command: str, parts_key: str, parts: Sequence[str], default_parts: Sequence[str]) -> str:
    """``command`` with its ``--config.<parts_key>`` override set to ``parts`` (none when they are the default)."""
    if not command:
        return command
    flag = f"--config.{parts_key}="
    args = [a for a in shlex.split(command) if not a.startswith(flag)]
    if list(parts) != list(default_parts):
        args.append(flag + repr(list(parts)))
    return " ".join(shlex.quote(a) for a in args)


def _differences(a: dict, b: dict, prefix: str = "") -> list:
    keys = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            keys += _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            keys.append(prefix + key)
    return keys


def merge_records(kept: dict, new: dict, experiment, default_parts: Sequence[str]) -> tuple[dict | None, str]:
    """The record holding ``kept``'s parts and ``new``'s (``new`` measures the parts it ran).

    Args:
        kept: the record already written (its per-seed results and config, JSON form).
        new: the new run's record, before it is summarised (``per_seed``, ``config``, run fields).
        experiment: the :class:`~reproductions.base.Experiment`; its ``parts_key`` names the parts
            and its ``merge_parts`` joins one seed's results.
        default_parts: the parts of the experiment's own config, in their order (the joined
            record lists its parts in this order, others after).

    Returns:
        ``(joined record without summary, "")``, or ``(None, why not)`` when the records measure
        different things (the new record then replaces the old one) or ``kept`` holds no part
        that ``new`` lacks.
    """
    key = experiment.parts_key
    if kept.get("experiment") != new["experiment"]:
        return None, f"it is a record of {kept.get('experiment')!r}"
    for field in ("quick", "num_seeds"):
        if kept.get(field) != new[field]:
            return None, f"its {field} is {kept.get(field)!r}, this run's {new[field]!r}"
    old_config = {k: v for k, v in kept.get("config", {}).items() if k != key}
    new_config = {k: v for k, v in new["config"].items() if k != key}
    differ = _differences(old_config, new_config)
    if differ:
        return None, f"its config differs in {differ}"
    old_parts, new_parts = list(kept["config"][key]), list(new["config"][key])
    only_old = [p for p in old_parts if p not in new_parts]
    if not only_old:
        return None, f"this run measures all of its parts ({old_parts})"
    rank = {p: i for i, p in enumerate(default_parts)}
    parts = sorted(dict.fromkeys(old_parts + new_parts), key=lambda p: (rank.get(p, len(rank)), p))
    per_seed = [
        experiment.merge_parts(old, fresh, parts) for old, fresh in zip(kept["per_seed"], new["per_seed"], strict=True)
    ]
    runs = []
    for run in runs_of(kept, key):
        run["parts"] = [p for p in run["parts"] if p not in new_parts]
        if run["parts"]:
            runs.append(run)
    runs += runs_of(new, key)
    merged = dict(new)
    merged["config"] = {**new["config"], key: parts}
    merged["per_seed"] = per_seed
    merged["runs"] = runs
    merged["overrides"] = {k: v for k, v in new.get("overrides", {}).items() if k != key}
    if parts != list(default_parts):
        merged["overrides"][key] = parts
    merged["command"] = command_for_parts(new.get("command", ""), key, parts, default_parts)
    merged["wall_time_s"] = round(sum(float(run["wall_time_s"]) for run in runs), 1)
    merged["date"] = max(run["date"] for run in runs)
    merged["resumed_seeds"] = []  # per run, in runs
    return merged, ""
