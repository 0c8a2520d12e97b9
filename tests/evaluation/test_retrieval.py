"""Retrieval metrics on hand-made scores, batched == unbatched, directions, zero-shot, groups."""

import numpy as np
import pytest

from tf_mmcl.data.synthetic import binary_candidates, make_symile_xor
from tf_mmcl.evaluation import (
    metrics_by_group,
    retrieval_metrics,
    retrieve,
    retrieve_all_directions,
    target_ranks,
    zero_shot_classification,
)
from tf_mmcl.ops import dot_scores, mip_scores


def test_hand_made_scores_with_ties():
    scores = np.array(
        [
            [5.0, 1.0, 2.0, 0.0],  # right (0) is best: rank 0
            [1.0, 3.0, 3.0, 0.0],  # right (1) tied with 2: tie counts against -> rank 1
            [4.0, 4.0, 4.0, 4.0],  # all tied: rank 3
            [0.0, 1.0, 2.0, 3.0],  # right (0) is worst: rank 3
        ]
    )
    targets = [0, 1, 2, 0]
    np.testing.assert_array_equal(target_ranks(scores, targets), [0, 1, 3, 3])
    m = retrieval_metrics(scores, targets, ks=(1, 2, 3))
    assert m["top1"] == 0.25
    assert m["recall@2"] == 0.5
    assert m["recall@3"] == 0.5
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 0.25) / 4)
    # Recall@k with k >= the 4 candidates would be 1.0 whatever the scores: the defaults leave it
    # out, an explicit request is an error.
    assert set(retrieval_metrics(scores, targets)) == {"top1", "mrr"}
    with pytest.raises(ValueError, match=r"ks \[4\] are >= the number of candidates \(4\)"):
        retrieval_metrics(scores, targets, ks=(1, 4))


def test_constant_scores_give_zero_top1():
    m = retrieval_metrics(np.zeros((5, 5)), np.arange(5), ks=(1,))
    assert m["top1"] == 0.0 and m["mrr"] == pytest.approx(0.2)


def test_batched_equals_unbatched():
    rng = np.random.default_rng(0)
    q1, q2 = rng.normal(size=(103, 16)), rng.normal(size=(103, 16))
    cands = rng.normal(size=(211, 16)).astype("float32")
    cands[:103] += q1 * q2  # some signal so metrics are not trivial
    targets = np.arange(103)
    full = retrieval_metrics(np.asarray(mip_scores([q1, q2], cands)), targets)
    ref_ranks = target_ranks(np.asarray(mip_scores([q1, q2], cands)), targets)
    for bs, cbs in [(1000, None), (10, None), (7, 13), (103, 211), (32, 50)]:
        m, ranks = retrieve(
            [q1, q2], cands, targets, ks=(1, 5, 10), batch_size=bs, candidate_batch_size=cbs, return_ranks=True
        )
        np.testing.assert_array_equal(ranks, ref_ranks)
        assert m == full
    assert 0.0 < full["top1"] < 1.0


def test_chunked_candidates_keep_ties_against_the_target():
    cands = np.ones((10, 2), "float32")
    m = retrieve([np.ones((3, 2), "float32")], cands, [0, 5, 9], batch_size=2, candidate_batch_size=3)
    assert m["top1"] == 0.0


def test_score_fn_is_used_and_checked():
    e = np.eye(4, dtype="float32")
    neg = lambda qs, c: -np.asarray(dot_scores(qs[0], c))  # noqa: E731
    assert retrieve([e], e, np.arange(4), score_fn=neg)["top1"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        retrieve([e], e, np.arange(4), score_fn=lambda qs, c: np.zeros((1, 1)))
    with pytest.raises(ValueError, match="NaN"):
        retrieve([e], e, np.arange(4), score_fn=lambda qs, c: np.full((len(qs[0]), len(c)), np.nan))


def test_all_directions():
    rng = np.random.default_rng(1)
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    a = unit(rng.normal(size=(50, 8)))
    emb = {"a": a, "b": unit(a + 0.01 * rng.normal(size=a.shape)), "c": unit(rng.normal(size=(50, 8)))}
    out = retrieve_all_directions(emb, ks=(1,), batch_size=16)
    assert set(out) == {"b->a", "c->a", "b,c->a", "a->b", "c->b", "a,c->b", "a->c", "b->c", "a,b->c"}
    assert out["b->a"]["top1"] == 1.0 and out["a->b"]["top1"] == 1.0
    assert out["c->a"]["top1"] < 0.2
    only = retrieve_all_directions(emb, directions=[(["b", "c"], "a")], score_fn={"b,c->a": mip_scores})
    assert list(only) == ["b,c->a"]
    assert set(retrieve_all_directions(emb, directions="m-1to1")) == {"b,c->a", "a,c->b", "a,b->c"}
    with pytest.raises(ValueError, match="no entry"):
        retrieve_all_directions(emb, directions=[("a", "b")], score_fn={"x->y": mip_scores})
    with pytest.raises(ValueError, match="aligned"):
        retrieve_all_directions({"a": a, "b": a[:10]})
    with pytest.raises(ValueError, match="target cannot"):
        retrieve_all_directions(emb, directions=[("a", "a")])


def test_zero_shot_on_symile_xor_with_ideal_embeddings():
    # ±1 codes make MIP(b, c, a) = sum_k b_k c_k a_k; with a = b XOR c the true code is the argmax.
    s = make_symile_xor(d_v=4, n_train=2, n_val=2, n_test=300, seed=0)
    x = s.as_numpy("test")
    pm = lambda v: 2.0 * v - 1.0  # noqa: E731
    classes = -pm(binary_candidates(4))  # XOR in ±1: a = -(b*c)
    m, preds = zero_shot_classification(
        [pm(x["b"]), pm(x["c"])], classes, x["a_index"], ks=(1, 2), return_predictions=True
    )
    assert m["accuracy"] == 1.0 and m["top1"] == 1.0
    np.testing.assert_array_equal(preds, x["a_index"])


def test_metrics_by_group():
    out = metrics_by_group([0, 0, 5, 1], [0, 0, 1, 1], ks=(1,), names=["clean", "misaligned"])
    assert out["clean"]["top1"] == 1.0 and out["clean"]["count"] == 2
    assert out["misaligned"]["top1"] == 0.0 and out["all"]["top1"] == 0.5
    with pytest.raises(ValueError, match="same length"):
        metrics_by_group([0, 1], [0])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: retrieval_metrics(np.zeros(3), [0]), r"\(B, C\)"),
        (lambda: retrieval_metrics(np.zeros((2, 3)), [0]), "2 queries"),
        (lambda: retrieval_metrics(np.zeros((2, 3)), [0, 3]), "index"),
        (lambda: retrieval_metrics(np.zeros((2, 3)), [0, -1]), "index"),
        (lambda: retrieval_metrics(np.zeros((1, 3)), [[0]]), "1-D"),
        (lambda: retrieval_metrics(np.zeros((1, 3)), [0.5]), "integer"),
        (lambda: retrieval_metrics(np.array([[np.nan, 1.0]]), [0]), "NaN"),
        (lambda: retrieval_metrics(np.zeros((1, 3)), [0], ks=(0,)), "positive"),
        (lambda: retrieve([np.zeros((2, 3))], np.zeros((4, 3)), [0, 1], batch_size=0), "batch_size"),
        (lambda: retrieve([np.zeros((2, 3))], np.zeros((4, 3)), [0, 1], candidate_batch_size=-2), "candidate_batch"),
        (lambda: retrieve([np.zeros((2, 3)), np.zeros((3, 3))], np.zeros((4, 3)), [0, 1]), "different numbers"),
        (lambda: retrieve([], np.zeros((4, 3)), []), "at least one"),
        (lambda: retrieve([np.zeros((2, 3))], np.zeros(4), [0, 1]), r"\(C, d\)"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
