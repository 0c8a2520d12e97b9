"""A seventh objective is one class: defined here, registered, trained with fit, saved, retrieved with."""

import itertools

import keras
import numpy as np
import pytest
from keras import ops

import tf_mmcl
import tf_mmcl.training
from tf_mmcl.losses.base import combine_masks, positive_number, symmetric_infonce

MODALITIES = ("a", "b", "c")


@keras.saving.register_keras_serializable(package="tf_mmcl_tests")
class WeightedPairwise(tf_mmcl.objectives.Objective):
    """Pairwise InfoNCE where every pair holding the first modality weighs ``first_weight``.

    Score: ``sum_m w(m, target) <q_m, c>``, so the weighted sum of the queries is an exact
    retrieval vector.
    """

    defaults = {"first_weight": 2.0}

    def validate(self, options):
        positive_number(options["first_weight"], "first_weight")
        return options

    def _weight(self, model, a, b):
        return self.options["first_weight"] if model.modalities[0] in (a, b) else 1.0

    def loss(self, model, y_pred, masks, scale, permutations=None):
        self.check_permutations(permutations)
        names = model.modalities
        total, norm = 0.0, 0.0
        for i, j in itertools.combinations(range(len(names)), 2):
            w = self._weight(model, names[i], names[j])
            logits = scale * ops.matmul(y_pred[names[i]], ops.transpose(y_pred[names[j]]))
            total = total + w * symmetric_infonce(logits, combine_masks(masks, (i, j)))
            norm += w
        return total / norm

    def pair_score(self, model, query, candidates):
        return ops.matmul(query, ops.transpose(candidates))

    def tuple_score(self, model, names, qs, candidates, fused):
        return ops.matmul(self._weighted(model, names, qs), ops.transpose(candidates))

    def _weighted(self, model, names, qs, target=None):
        target = target if target is not None else next(n for n in model.modalities if n not in names)
        return sum(self._weight(model, n, target) * ops.cast(q, "float32") for n, q in zip(names, qs))

    def reduces_exactly(self, model, names):
        return True

    def reduce_queries(self, model, target, embeddings, fused, masks):
        names = self._ordered(model, embeddings)
        qs = [
            embeddings[n]
            if masks.get(n) is None
            else ops.where(ops.cast(masks[n], "bool")[:, None], embeddings[n], 0.0)
            for n in names
        ]
        if len(qs) == 1:
            return ops.cast(qs[0], "float32")
        return self._weighted(model, names, qs, target)


@pytest.fixture(autouse=True, scope="module")
def _registered():
    # What a new objective's module does at import with @tf_mmcl.objectives.register(...);
    # here scoped to this module so the registry is left as found.
    tf_mmcl.objectives.register("weighted_pairwise")(WeightedPairwise)
    yield
    tf_mmcl.objectives.unregister("weighted_pairwise")


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4)).astype("float32")
    return {m: (z @ rng.normal(size=(4, 5)) + 0.1 * rng.normal(size=(n, 5))).astype("float32") for m in MODALITIES}


def _model(objective, **options):
    keras.utils.set_random_seed(0)
    return tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(16,)) for m in MODALITIES},
        embedding_dim=8,
        objective=objective,
        **options,
    )


def test_the_new_objective_is_registered_by_name():
    assert "weighted_pairwise" in tf_mmcl.objectives.names()
    assert tf_mmcl.objectives.defaults("weighted_pairwise") == {"first_weight": 2.0}
    # A config switched to it starts from its own defaults (configs/ hold tuned settings).
    assert tf_mmcl.training.objective_defaults("weighted_pairwise") == {"first_weight": 2.0}
    with pytest.raises(ValueError, match="first_weight must be a finite number > 0"):
        _model("weighted_pairwise", first_weight=-1.0)


def test_a_name_and_an_instance_give_the_same_model():
    x = _data(16)
    by_name, by_instance = _model("weighted_pairwise", first_weight=3.0), _model(WeightedPairwise(first_weight=3.0))
    assert type(by_name.objective) is WeightedPairwise and by_name.objective.options == {"first_weight": 3.0}
    a, b = by_name(x), by_instance(x)
    np.testing.assert_array_equal(by_name.compute_loss(x, y_pred=a), by_instance.compute_loss(x, y_pred=b))


def test_fit_then_retrieve_with_the_new_objective(tmp_path):
    x = _data()
    model = _model("weighted_pairwise", first_weight=3.0, in_batch_metrics=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    history = model.fit(x, epochs=4, batch_size=16, verbose=0).history
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]

    # The loss is the objective's: recompute it by hand on the final embeddings.
    emb = model(x, training=False)
    scale = float(model.logit_scale.value())
    expected = 0.0
    for a, b in itertools.combinations(MODALITIES, 2):
        w = 3.0 if "a" in (a, b) else 1.0
        s = scale * np.asarray(emb[a]) @ np.asarray(emb[b]).T
        lse_rows = np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)) + s.max(1)
        lse_cols = np.log(np.exp(s - s.max(0, keepdims=True)).sum(0)) + s.max(0)
        expected += w * 0.5 * (np.mean(lse_rows - np.diag(s)) + np.mean(lse_cols - np.diag(s)))
    expected /= 3.0 + 3.0 + 1.0
    np.testing.assert_allclose(float(model.compute_loss(x, y_pred=emb)), expected, rtol=1e-4)

    # Retrieval through a CandidateIndex is the model's own exact top-k, 1->1 and 2->1.
    index = tf_mmcl.retrieval.CandidateIndex.build(model, "c", x["c"], verbose=0)
    for queries in ({"a": x["a"]}, {"a": x["a"], "b": x["b"]}):
        scores, ids = index.search(queries, k=3)
        full = np.asarray(model.score(queries, "c", x["c"]))
        np.testing.assert_allclose(scores, -np.sort(-full, axis=1)[:, :3], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.take_along_axis(full, ids, 1), scores, rtol=1e-5, atol=1e-5)
    # ... and it has learnt: 2->1 top-1 far above chance (1/64).
    assert np.mean(index.search({"a": x["a"], "b": x["b"]}, k=1)[1][:, 0] == np.arange(len(x["c"]))) > 0.2

    # The config names the objective; the .keras file loads it back.
    config = model.get_config()
    assert config["objective"] == "weighted_pairwise" and config["first_weight"] == 3.0
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.objective, WeightedPairwise) and loaded.objective.options == {"first_weight": 3.0}
    np.testing.assert_array_equal(loaded.score({"a": x["a"]}, "c", x["c"]), model.score({"a": x["a"]}, "c", x["c"]))


def test_an_unregistered_objective_instance_serialises_nested(tmp_path):
    @keras.saving.register_keras_serializable(package="tf_mmcl_tests")
    class Unnamed(WeightedPairwise):  # a subclass the registry does not hold under its name
        pass

    model = _model(Unnamed(first_weight=1.5))
    model(_data(8))
    config = model.get_config()
    assert isinstance(config["objective"], dict) and "first_weight" not in config
    restored = tf_mmcl.models.MultimodalContrastiveModel.from_config(config)
    assert type(restored.objective) is Unnamed and restored.objective.options == {"first_weight": 1.5}


def test_registry_errors_name_what_is_known():
    with pytest.raises(ValueError, match=r"Unknown objective 'vicreg'; expected one of \('clip', 'symile'"):
        tf_mmcl.objectives.get("vicreg")
    with pytest.raises(ValueError, match="already registered"):
        tf_mmcl.objectives.register("clip")(WeightedPairwise)
    with pytest.raises(TypeError, match="subclasses of tf_mmcl.objectives.Objective"):
        tf_mmcl.objectives.register("not_one")(dict)
    with pytest.raises(ValueError, match="pass them to its constructor"):
        tf_mmcl.objectives.get(tf_mmcl.objectives.Symile(), seed=1)
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['lam'\] for objective 'clip'"):
        tf_mmcl.objectives.CLIP(lam=0.5)


def test_the_new_objective_exports_for_serving_and_trains_from_a_config(tmp_path):
    import tensorflow as tf

    from tf_mmcl.export import export_for_serving

    x = _data(16)
    model = _model("weighted_pairwise", first_weight=3.0)
    model(x)
    # The SavedModel's signatures are graphs: loading needs neither the objective's module nor Keras.
    path = export_for_serving(model, str(tmp_path), "custom", partial_queries=True)
    served = tf.saved_model.load(path)
    cands = served.signatures["embed_c"](c=x["c"])["embedding"]
    for queries in ({"a": x["a"]}, {"a": x["a"], "b": x["b"]}):
        name = "score_c" if len(queries) == 2 else "score_c_from_a"
        logits = served.signatures[name](**queries, candidate_embeddings=cands)["logits"]
        np.testing.assert_allclose(logits, model.score(queries, "c", x["c"]), rtol=1e-5, atol=1e-5)

    # A training config switched to it starts from its defaults and validates its options.
    config = tf_mmcl.training.default_config()
    tf_mmcl.training.apply_overrides(config, ["model.objective=weighted_pairwise"])
    assert config.model.objective_options.to_dict() == {"first_weight": 2.0}
    tf_mmcl.training.validate_config(config)
    config.model.objective_options.first_weight = -1.0
    with pytest.raises(ValueError, match="first_weight"):
        tf_mmcl.training.validate_config(config)
