"""Image retrieval by instance (scan) and by class (digit), as Symile-M3's task on m3_digits."""

import numpy as np
import pytest

from tf_mmcl.evaluation.instance_and_class import class_ranks, distinct_candidates, instance_and_class_metrics


def _brute_class_rank(s, q, c):
    ranks = []
    for i in range(len(q)):
        best = max(s[i, j] for j in range(len(c)) if c[j] == q[i])
        ranks.append(sum(1 for j in range(len(c)) if c[j] != q[i] and s[i, j] >= best))
    return ranks


def test_class_ranks_match_brute_force_with_ties():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, size=(30, 12)).astype(float)  # many ties
    q, c = rng.integers(0, 3, 30), np.arange(12) % 3
    assert class_ranks(s, q, c).tolist() == _brute_class_rank(s, q, c)


def test_metrics_and_distinct_candidates():
    image_id = np.array([5, 9, 5, 2, 9])
    labels_by_id = {5: 1, 9: 1, 2: 0}
    rows, targets = distinct_candidates(image_id)
    np.testing.assert_array_equal(image_id[rows][targets], image_id)
    cand_classes = np.array([labels_by_id[i] for i in image_id[rows]])  # ids 2, 5, 9 -> 0, 1, 1
    # A scorer that knows the class but not the scan: instance top-1 only by luck, class top-1 = 1.
    query_classes = np.array([labels_by_id[i] for i in image_id])
    scores = (query_classes[:, None] == cand_classes[None, :]).astype(float)
    m = instance_and_class_metrics(scores, targets, query_classes, cand_classes, ks=(1, 2))
    assert m["by_class"]["top1"] == 1.0
    assert m["by_instance"]["top1"] == pytest.approx(1 / 5)  # only the class-0 query has no tie
    assert m["by_instance"]["recall@2"] == 1.0


def test_errors():
    with pytest.raises(ValueError, match="No candidate of class"):
        class_ranks(np.zeros((1, 2)), [3], [0, 1])
    with pytest.raises(ValueError, match="shape"):
        class_ranks(np.zeros((2, 2)), [0], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        class_ranks(np.array([[np.nan, 0.0]]), [0], [0, 1])
