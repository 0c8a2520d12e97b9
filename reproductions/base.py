"""The experiment interface and registry of ``tools/reproduce.py``.

An experiment is a :class:`Experiment` subclass registered under a name. The runner
(:mod:`reproductions.runner`) loads its config (``configs/reproduce/<name>.py``), calls
:meth:`Experiment.run` once per seed, then :meth:`Experiment.summarize` and
:meth:`Experiment.plot`, and stores everything as ``<output_dir>/results/<name>.json``; the
Markdown is assembled from those JSON files. Adding an experiment = a module with a subclass
decorated by :func:`register`, imported in ``reproductions/__init__.py``, plus a config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["Experiment", "register", "get_experiment", "EXPERIMENTS"]

EXPERIMENTS: dict = {}


class Experiment:
    """Base class of a reproduction experiment.

    Class attributes:
        name: registry name (also the config file and JSON name).
        title: section title in docs/results.md.
        source: the paper (and table/figure) the experiment reproduces.
        claim: the paper's claim being checked, in one sentence.
        parts_key: a config key listing independent parts of the experiment (m3_digits_wide's
            ``dataset_configs``, one width each), or None. A run of some parts is joined into the
            record holding the others (:mod:`reproductions.record_parts`); such an experiment
            implements :meth:`merge_parts`.
    """

    name: str = ""
    title: str = ""
    source: str = ""
    claim: str = ""
    parts_key: str | None = None
    # The seed's UnitStore while the runner runs a seed (reproductions.seed_store), else None.
    units = None

    def resumable(self, key: str, compute: Callable[[], dict]):
        """``compute()``, one independent unit of a seed (a training), kept once it is finished.

        Within a run of :func:`reproductions.runner.run_experiment`, the result is stored as soon
        as ``compute`` returns, and the same command after a kill returns it without computing it
        again, so a seed that takes hours restarts at its first unfinished training. ``compute``
        must not depend on units computed before it (a training sets its own random seed). The
        result reads back as JSON (numpy values become floats and lists) whether stored or not.

        Args:
            key: the unit's name, unique within the seed (e.g. ``"w=2/Symile/mask"``).
            compute: computes the unit's JSON-serialisable result.
        """
        if self.units is None:
            return compute()
        return self.units.run(key, compute)

    def run_seed(self, config, seed: int, log: Callable[[str], None]) -> dict:
        """Runs the experiment for one seed.

        Args:
            config: the experiment's ``ml_collections.ConfigDict`` (its variant, e.g. quick, and overrides applied).
            seed: the seed (data, initialisation and shuffling).
            log: progress logger.

        Returns:
            A JSON-serialisable dict of this seed's measurements.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement run_seed.")

    def summarize(self, per_seed: list, config) -> dict:
        """Aggregates the per-seed results into tables and findings.

        Returns:
            ``{"tables": [{"caption", "header", "rows"}], "findings": [markdown lines],
            "verdict": one line saying whether the claim held}``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement summarize.")

    def merge_parts(self, kept: dict, new: dict, parts: list) -> dict:
        """One seed's results with the parts of ``kept`` and ``new`` (``new``'s win), ordered as ``parts``."""
        raise NotImplementedError(f"{type(self).__name__} has no parts to merge (parts_key is {self.parts_key!r}).")

    def plot(self, per_seed: list, config, path: str) -> None:
        """Writes the experiment's figure (PNG) to ``path``."""
        raise NotImplementedError(f"{type(self).__name__} must implement plot.")


def register(cls):
    """Class decorator: registers an :class:`Experiment` subclass under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Experiment)):
        raise ValueError(f"register expects an Experiment subclass, got {cls!r}.")
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name.")
    if cls.name in EXPERIMENTS and EXPERIMENTS[cls.name] is not cls:
        raise ValueError(f"An experiment named {cls.name!r} is already registered ({EXPERIMENTS[cls.name].__name__}).")
    EXPERIMENTS[cls.name] = cls
    return cls


def get_experiment(name: str) -> Experiment:
    """An instance of the registered experiment ``name``.

    Raises:
        ValueError: if no experiment has that name.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}; registered: {sorted(EXPERIMENTS)}.")
    return EXPERIMENTS[name]()


def check_keys(mapping: Mapping, allowed, what: str) -> None:
    """Raises a clear ValueError if ``mapping`` has keys outside ``allowed``."""
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown {what} key(s) {unknown}; allowed: {sorted(allowed)}.")
