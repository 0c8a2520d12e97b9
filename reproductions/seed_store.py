"""Finished seeds of an unfinished reproduction, kept so that the same command resumes it.

A full reproduction runs for hours (m3_digits at w = 5: about 40 min per seed on 2 cores). A
killed run used to lose every finished seed. :class:`SeedStore` writes each seed's result as
soon as it is finished, atomically, to
``<output_dir>/results/.seeds/<experiment>-<config digest>/seed_<s>.json``; the same command
(same experiment, same config after overrides) then trains only the seeds that are missing, and
the folder is removed once the experiment's record is written.

A stored seed is reused only when it was produced by the same config *and* the same code: the
file holds a digest of the library's and the experiments' Python sources, and a seed from other
code is retrained (and said so), so one record never mixes two versions of the code or two
configs. Every result goes through JSON, resumed or not, so a resumed record is the record the
uninterrupted run writes.

A seed can itself take hours (m3_digits_missing: 9 trainings of 48000 steps, about 4 h on one
core), longer than a machine may stay up. An experiment therefore names the independent pieces
of a seed (one training each) as *units*: :meth:`SeedStore.units` gives the seed's
:class:`UnitStore`, which keeps each finished unit under
``.../seed_<s>.units/`` (same atomic write, same digests) and hands it back to the same command,
so a killed seed restarts at its first unfinished training. A unit must not depend on what ran
before it in the seed (each training sets its own random seed), so that the resumed seed is the
seed that was never interrupted. The units go once the seed's own file is written.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from tf_mmcl.training.files import CorruptFileError, read_json, remove_leftovers, write_text

__all__ = ["SEEDS_SUBDIR", "SeedStore", "UnitStore", "code_digest", "config_digest", "to_json_value"]

SEEDS_SUBDIR = ".seeds"
_ROOT = Path(__file__).resolve().parent.parent
_CODE_DIRS = ("tf_mmcl", "reproductions")


def to_json_value(value, default: Callable | None = None):
    """``value`` as it reads back from the JSON record (numpy scalars/arrays -> floats/lists)."""
    return json.loads(json.dumps(value, default=default))


def config_digest(config: dict, default: Callable | None = None) -> str:
    """A short SHA-256 of the config's canonical JSON (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, default=default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def code_digest(root: Path = _ROOT) -> str:
    """A short SHA-256 over the ``.py`` sources of ``tf_mmcl/`` and ``reproductions/`` (path + content)."""
    h = hashlib.sha256()
    for sub in _CODE_DIRS:
        for path in sorted((root / sub).rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
            h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


class SeedStore:
    """The finished seeds of one experiment under one config.

    Args:
        results_dir: the run's ``<output_dir>/results`` directory.
        experiment: the experiment's name.
        config: the run's config as a plain dict (``ConfigDict.to_dict()``).
        default: the JSON encoder's ``default`` for values JSON lacks (numpy types).
        log: progress logger.

    Example:
        >>> import tempfile
        >>> store = SeedStore(tempfile.mkdtemp(), "demo", {"steps": 10})
        >>> store.save(0, {"top1": 0.5})
        >>> store.load(2)
        {0: {'top1': 0.5}}
    """

    def __init__(self, results_dir, experiment: str, config: dict, default: Callable | None = None, log=print):
        self.default = default
        self.log = log
        self.experiment = experiment
        self.config_digest = config_digest(config, default)
        self.code_digest = code_digest()
        self.directory = Path(results_dir) / SEEDS_SUBDIR / f"{experiment}-{self.config_digest}"

    def _path(self, seed: int) -> Path:
        return self.directory / f"seed_{int(seed)}.json"

    def units(self, seed: int) -> UnitStore:
        """The store of seed ``seed``'s finished units (its trainings), for a seed not finished yet."""
        return UnitStore(
            self.directory / f"seed_{int(seed)}.units",
            self.experiment,
            seed,
            self.config_digest,
            self.code_digest,
            self.default,
            self.log,
        )

    def save(self, seed: int, result) -> None:
        """Writes one finished seed's result (atomically: a kill leaves the seed or nothing)."""
        _write_entry(self._path(seed), self, {"seed": int(seed)}, result)
        # The seed's file holds every unit now (a kill before this line leaves both: the seed file wins).
        shutil.rmtree(self.units(seed).directory, ignore_errors=True)

    def load(self, num_seeds: int) -> dict:
        """``{seed: result}`` of the seeds ``0..num_seeds-1`` already finished by this config and code."""
        if not self.directory.is_dir():
            return {}
        remove_leftovers(self.directory)  # a temporary file of a seed killed while being written
        done = {}
        for seed in range(int(num_seeds)):
            path = self._path(seed)
            if not path.exists():
                continue
            try:
                entry = read_json(path, f"stored seed {seed} of {self.experiment}")
            except CorruptFileError as e:
                self.log(f"[{self.experiment}] {e}; seed {seed} is run again.")
                continue
            if entry.get("config_digest") != self.config_digest or entry.get("seed") != seed:
                self.log(f"[{self.experiment}] {path} belongs to another run; seed {seed} is run again.")
                continue
            if entry.get("code_digest") != self.code_digest:
                self.log(
                    f"[{self.experiment}] seed {seed} in {path} was computed by other code (tf_mmcl/ or "
                    "reproductions/ changed since); it is run again so the record holds one version of the code."
                )
                continue
            done[seed] = entry["result"]
        return done

    def clear(self) -> None:
        """Removes this config's stored seeds (after the record is written, or to start afresh)."""
        shutil.rmtree(self.directory, ignore_errors=True)
        parent = self.directory.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


class UnitStore:
    """The finished units (independent trainings) of one seed that is not finished yet.

    Made by :meth:`SeedStore.units`; an experiment reaches it through
    :meth:`reproductions.base.Experiment.resumable`. Each unit's result is written atomically as
    soon as it is computed, and :meth:`run` returns the stored result instead of computing it
    again when the same experiment, config (the directory is the config's) and code finished it.

    Args:
        directory: ``<seed store>/seed_<s>.units``.
        experiment: the experiment's name (for messages).
        seed: the seed.
        config_digest: the run's config digest.
        code_digest: the digest of the code computing the units.
        default: the JSON encoder's ``default`` for values JSON lacks (numpy types).
        log: progress logger (a store sent to a worker process logs with ``print`` there).

    Example:
        >>> import tempfile
        >>> units = SeedStore(tempfile.mkdtemp(), "demo", {"steps": 10}, log=lambda m: None).units(0)
        >>> units.run("w2/Symile", lambda: {"top1": 0.5})
        {'top1': 0.5}
        >>> units.run("w2/Symile", lambda: 1 / 0)  # finished: not computed again
        {'top1': 0.5}
    """

    def __init__(self, directory, experiment, seed, config_digest, code_digest, default=None, log=print):
        self.directory = Path(directory)
        self.experiment = experiment
        self.seed = int(seed)
        self.config_digest = config_digest
        self.code_digest = code_digest
        self.default = default
        self.log = log

    def __getstate__(self):
        # The runner's logger may be a closure (not picklable); a worker process prints instead.
        return {**self.__dict__, "log": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.log is None:
            self.log = print_flushed

    def _path(self, key: str) -> Path:
        # A readable name plus a digest of the key: two keys never share a file.
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")[:60]
        return self.directory / f"{slug}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:8]}.json"

    def _stored(self, key: str):
        """``(True, result)`` if ``key`` was finished by this config and code, else ``(False, None)``."""
        path = self._path(key)
        if not path.exists():
            return False, None
        what = f"unit {key!r} of seed {self.seed} of {self.experiment}"
        try:
            entry = read_json(path, f"stored {what}")
        except CorruptFileError as e:
            self.log(f"[{self.experiment}] {e}; it is run again.")
            return False, None
        if (entry.get("key"), entry.get("seed"), entry.get("config_digest")) != (key, self.seed, self.config_digest):
            self.log(f"[{self.experiment}] {path} belongs to another run; {what} is run again.")
            return False, None
        if entry.get("code_digest") != self.code_digest:
            self.log(f"[{self.experiment}] {what} in {path} was computed by other code; it is run again.")
            return False, None
        return True, entry["result"]

    def run(self, key: str, compute: Callable):
        """``compute()``'s result as it reads back from JSON: stored as soon as it is computed, or
        the stored one when this config and code finished ``key`` before (no computation then)."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"A unit's key must be a non-empty string naming it, got {key!r}.")
        if self.directory.is_dir():
            remove_leftovers(self.directory)  # a unit killed while being written
        found, result = self._stored(key)
        if found:
            self.log(f"[{self.experiment}] seed {self.seed}: {key} finished earlier by this command (resumed)")
            return result
        result = to_json_value(compute(), self.default)
        _write_entry(self._path(key), self, {"seed": self.seed, "key": key}, result)
        return result


def _write_entry(path: Path, store, fields: dict, result) -> None:
    """Writes a finished seed's or unit's ``result`` atomically, with the ``store``'s experiment
    and digests (what a later run checks before taking it back) and ``fields`` naming it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "experiment": store.experiment,
        **fields,
        "config_digest": store.config_digest,
        "code_digest": store.code_digest,
        "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "result": result,
    }
    write_text(path, json.dumps(entry, indent=1, default=store.default) + "\n")


def print_flushed(message: str) -> None:
    """The logger of a worker process: ``print``, flushed so the parent's log shows it at once."""
    print(message, flush=True)
