"""Runs ``tf_mmcl.training.train`` and SIGKILLs itself at an injected point (for the resume tests).

``python kill_run.py WORKDIR POINT OVERRIDE...`` where POINT is one of

* ``batch:E:B``: after batch B (1-based) of epoch E (1-based) has been applied;
* ``partial:NAME:K``: while writing the K-th file whose final name contains NAME: the
  temporary file is cut to half its size, then the process is killed (a slow writer caught
  mid-write);
* ``after:NAME:K``: right after the K-th file whose name contains NAME got its final name.
"""

import os
import signal
import sys

from configs.benchmark import benchmark_config
from tf_mmcl import training
from tf_mmcl.training import files, loop


def _die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main(workdir, point, *overrides):
    kind, name, count = point.split(":")
    count = int(count)
    if kind == "batch":
        epoch_at, batch_at = int(name), count
        original = loop._RunCallback.on_train_batch_end
        state = {"epoch": 0}
        begin = loop._RunCallback.on_epoch_begin

        def on_epoch_begin(self, epoch, logs=None):
            state["epoch"] = epoch + 1
            return begin(self, epoch, logs)

        def on_train_batch_end(self, batch, logs=None):
            original(self, batch, logs)
            if state["epoch"] == epoch_at and batch + 1 == batch_at:
                _die()

        loop._RunCallback.on_epoch_begin = on_epoch_begin
        loop._RunCallback.on_train_batch_end = on_train_batch_end
    else:
        commit = files._commit
        seen = {"n": 0}

        def killing_commit(tmp, path):
            if name in os.path.basename(path):
                seen["n"] += 1
                if seen["n"] == count:
                    if kind == "partial":
                        size = os.path.getsize(tmp)
                        with open(tmp, "r+b") as f:
                            f.truncate(size // 2)
                        if os.environ.get("KILL_RUN_IN_PLACE"):  # as if the disk lost the file's tail
                            os.replace(tmp, path)
                        _die()
                    commit(tmp, path)
                    _die()
            commit(tmp, path)

        files._commit = killing_commit
    config = training.apply_overrides(benchmark_config("symile_xor", "symile"), list(overrides))
    training.train(config, workdir)
    print("finished without being killed")


if __name__ == "__main__":
    main(*sys.argv[1:])
