"""Crash-safe files for training runs: atomic writes and an exact, verifiable backup.

Every file a run writes goes through :func:`atomic_path`: the content is written to a temporary
name in the same directory, flushed to disk (``fsync``), then renamed over the final name
(``os.replace`` is atomic on POSIX and Windows). A process killed at any moment (even by
``SIGKILL``) therefore leaves either the previous complete file or the new complete file, plus
at most a ``.tmp-*`` leftover that :func:`remove_leftovers` deletes at the next start.

:class:`BackupStore` keeps the full training state of the last completed epochs (model
weights, optimizer variables, random-number states, the metrics history): an ``.npz`` file
with the arrays and a JSON file naming its size and SHA-256, written in that order. A backup is
used only if both files are complete and agree; a corrupt one is reported by name (a warning)
and the previous one is used instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import warnings
import zipfile

import numpy as np

__all__ = [
    "BackupStore",
    "CorruptFileError",
    "TMP_MARKER",
    "atomic_path",
    "read_json",
    "remove_leftovers",
    "write_bytes",
    "write_json",
    "write_text",
]

TMP_MARKER = ".tmp-"


class CorruptFileError(ValueError):
    """A run file exists but cannot be read (truncated, partial or not the expected format)."""


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _commit(tmp, path):
    """Makes the complete temporary file durable, then gives it the final name."""
    _fsync_file(tmp)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path in ``path``'s directory; on success it replaces ``path`` atomically.

    The temporary name keeps ``path``'s suffix (Keras requires ``.keras`` / ``.weights.h5``)
    and contains :data:`TMP_MARKER`. On an exception the temporary file is removed and
    ``path`` is left as it was.

    Example:
        >>> import os, tempfile
        >>> target = os.path.join(tempfile.mkdtemp(), "a.txt")
        >>> with atomic_path(target) as tmp:
        ...     _ = open(tmp, "w").write("done")
        >>> open(target).read()
        'done'
    """
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f"{TMP_MARKER}{os.getpid()}-{name}")
    try:
        yield tmp
        _commit(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(directory)


def write_bytes(path, data: bytes):
    """Writes ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path, text: str):
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, data):
    """Writes ``data`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path, what="file"):
    """Reads a JSON file; a file that does not parse is a :class:`CorruptFileError` naming it."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"The {what} {path} is corrupt or incomplete (not valid JSON: {e}).") from e


def remove_leftovers(directory):
    """Deletes the temporary files (``*.tmp-*``) a killed process left in ``directory``."""
    if not os.path.isdir(directory):
        return []
    removed = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(TMP_MARKER):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, name))
                removed.append(name)
    return removed


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BackupStore:
    """The training state after each completed epoch, in ``directory``.

    Epoch ``e`` (1-based count of completed epochs) is ``epoch_EEEEEE.npz`` (arrays) and
    ``epoch_EEEEEE.json`` (``{"epoch", "sha256", "size", ...state}``), the JSON written last.
    :meth:`save` keeps the previous backup until the new one is complete, then deletes older
    ones (``keep`` backups remain).

    Args:
        directory: the backup directory (created on the first save).
        keep: how many complete backups to keep (>= 1).
    """

    _PATTERN = re.compile(r"^epoch_(\d{6})\.json$")

    def __init__(self, directory, keep: int = 2):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}.")
        self.directory = directory
        self.keep = keep

    def _paths(self, epoch):
        stem = os.path.join(self.directory, f"epoch_{int(epoch):06d}")
        return stem + ".npz", stem + ".json"

    def epochs(self):
        """The epochs with a backup JSON file, newest first (complete or not)."""
        if not os.path.isdir(self.directory):
            return []
        found = [int(m.group(1)) for m in map(self._PATTERN.match, os.listdir(self.directory)) if m]
        return sorted(found, reverse=True)

    def save(self, epoch: int, arrays: dict, state: dict):
        """Writes the backup of ``epoch`` (arrays: name -> np.ndarray; state: JSON-able)."""
        os.makedirs(self.directory, exist_ok=True)
        remove_leftovers(self.directory)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        npz_path, json_path = self._paths(epoch)
        write_bytes(npz_path, data)
        write_json(json_path, dict(state, epoch=int(epoch), sha256=_sha256(data), size=len(data)))
        for old in self.epochs()[self.keep :]:
            for p in self._paths(old):
                with contextlib.suppress(OSError):
                    os.remove(p)

    def load(self, epoch: int):
        """``(state, arrays)`` of one backup; :class:`CorruptFileError` naming a bad file."""
        npz_path, json_path = self._paths(epoch)
        state = read_json(json_path, "backup state file")
        if not isinstance(state, dict) or not {"epoch", "sha256", "size"} <= set(state):
            raise CorruptFileError(f"The backup state file {json_path} is incomplete (no epoch/sha256/size).")
        try:
            with open(npz_path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise CorruptFileError(f"The backup file {npz_path} is missing or unreadable ({e}).") from e
        if len(data) != state["size"] or _sha256(data) != state["sha256"]:
            raise CorruptFileError(
                f"The backup file {npz_path} is corrupt or incomplete ({len(data)} bytes, "
                f"expected {state['size']} with the SHA-256 in {json_path})."
            )
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise CorruptFileError(f"The backup file {npz_path} cannot be read ({e}).") from e
        return state, arrays

    def latest(self, accept=None):
        """The newest complete backup as ``(state, arrays)``, or None.

        Corrupt or partial backups are reported with a warning naming the file and skipped in
        favour of the previous one. ``accept(state)`` may return a reason (str) to skip a backup
        (e.g. written for another config); None accepts it.
        """
        for epoch in self.epochs():
            try:
                state, arrays = self.load(epoch)
            except CorruptFileError as e:
                warnings.warn(f"{e} Skipping it; resuming from the previous backup, if any.", stacklevel=2)
                continue
            reason = accept(state) if accept else None
            if reason:
                warnings.warn(f"Ignoring the backup {self._paths(epoch)[1]}: {reason}", stacklevel=2)
                continue
            return state, arrays
        return None

    def clear(self):
        """Deletes the backup directory (after the run has finished)."""
        shutil.rmtree(self.directory, ignore_errors=True)
