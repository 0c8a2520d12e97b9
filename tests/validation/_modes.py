"""Runs one callable in eager mode, inside ``tf.function`` and under XLA, on tensor arguments.

Inside the graphs the batch dimension is unknown (``None``), so run-time checks, not
trace-time ones, are what is exercised there.
"""

import numpy as np
import tensorflow as tf

MODES = ("eager", "graph", "xla")


def run(mode, fn, *arrays, dynamic=True):
    """``fn(*tensors)`` in ``mode``; returns the result as NumPy."""
    tensors = [tf.convert_to_tensor(a) for a in arrays]
    if mode == "eager":
        out = fn(*tensors)
    else:
        spec = [
            tf.TensorSpec([None] + list(t.shape[1:]) if dynamic and t.shape.rank else t.shape, t.dtype) for t in tensors
        ]
        out = tf.function(fn, input_signature=spec, jit_compile=(mode == "xla"))(*tensors)
    return np.asarray(out)


def assert_rejected(mode, fn, *arrays, match=None, dynamic=True):
    """Eager and graph: an exception (whose message matches); XLA: an exception or a NaN result.

    XLA compiles ``tf.debugging`` assertions to nothing, so its run-time checks poison the result
    with NaN instead (trace-time checks still raise).
    """
    import pytest

    errors = (ValueError, TypeError, tf.errors.InvalidArgumentError)
    if mode == "xla":
        try:
            out = run(mode, fn, *arrays, dynamic=dynamic)
        except errors as e:
            if match is not None:
                assert _matches(match, e), str(e)
            return
        assert np.all(np.isnan(out)), f"XLA gave {out} instead of a NaN-poisoned result"
        return
    with pytest.raises(errors) as info:
        run(mode, fn, *arrays, dynamic=dynamic)
    if match is not None:
        assert _matches(match, info.value), str(info.value)


def _matches(pattern, error):
    import re

    return re.search(pattern, str(error)) is not None
