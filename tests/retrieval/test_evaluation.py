"""Streamed whole-split ranks through the index equal ranks from the dense score matrix."""

import numpy as np
import pytest

from tests.retrieval.helpers import tiny_model
from tf_mmcl import evaluation
from tf_mmcl.retrieval import CandidateIndex, evaluate_split_with_index


@pytest.mark.parametrize("objective", ["symile", "gram", "gated_symile", "clip"])
def test_ranks_equal_dense_target_ranks(objective):
    model, x = tiny_model(objective, n=50)
    index = CandidateIndex.build(model, "c", x["c"], verbose=0)
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 50, size=20)
    for names in (("a", "b"), ("a",)):
        queries = {n: x[n][:20] for n in names}
        dense = evaluation.target_ranks(np.asarray(model.score(queries, "c", x["c"])), targets)
        streamed = index.ranks(queries, targets, batch_size=7, block_size=13)
        assert np.mean(streamed == dense) >= 0.95, (objective, names)  # float ties aside
        assert np.max(np.abs(streamed - dense)) <= 1


def test_evaluate_split_with_index_matches_the_dense_metrics():
    model, x = tiny_model("symile", n=30)
    result = evaluate_split_with_index(model, x, ks=(1, 5))
    assert sorted(result["directions"]) == [
        "a,b->c",
        "a,c->b",
        "a->b",
        "a->c",
        "b,c->a",
        "b->a",
        "b->c",
        "c->a",
        "c->b",
    ]
    dense = evaluation.retrieval_metrics(
        np.asarray(model.score({"a": x["a"], "b": x["b"]}, "c", x["c"])), np.arange(30), ks=(1, 5)
    )
    for key, value in dense.items():
        assert result["directions"]["a,b->c"][key] == pytest.approx(value, abs=0.04)


def test_ranks_reject_bad_targets():
    model, x = tiny_model("symile", n=10)
    index = CandidateIndex.build(model, "c", x["c"], verbose=0)
    with pytest.raises(ValueError, match="targets must be row positions"):
        index.ranks({"a": x["a"]}, np.full(10, 10))
    with pytest.raises(ValueError, match="targets must be 10 int"):
        index.ranks({"a": x["a"]}, np.zeros(3, int))
