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
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from tf_mmcl.training.files import CorruptFileError, read_json, remove_leftovers, write_text

__all__ = ["SEEDS_SUBDIR", "SeedStore", "code_digest", "config_digest", "to_json_value"]

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

    def save(self, seed: int, result) -> None:
        """Writes one finished seed's result (atomically: a kill leaves the seed or nothing)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = {
            "experiment": self.experiment,
            "seed": int(seed),
            "config_digest": self.config_digest,
            "code_digest": self.code_digest,
            "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "result": result,
        }
        write_text(self._path(seed), json.dumps(entry, indent=1, default=self.default) + "\n")

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
