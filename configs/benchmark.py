r"""Training configs for ``tools/train.py``: one objective on one benchmark, named by the argument.

    python tools/train.py --config configs/benchmark.py:symile_xor,symile --workdir workdir/symile
    python tools/train.py --config configs/benchmark.py:fragility,gated_symile --workdir workdir/fg \
        --config.epochs=10 --config.model.objective_options.key_dim=32

The argument is ``<benchmark>,<objective>``: a benchmark of :data:`BENCHMARKS` (``symile_xor``,
``confu_xor``, ``fragility``, ``misalignment``, ``m3_digits``) and an objective of
``tf_mmcl.models.OBJECTIVES`` (``clip``, ``symile``, ``confu``, ``gram``, ``triangle``,
``gated_symile``). Every setting lives here: the benchmark's data size, encoders and training
settings (sized for a CPU in minutes) and each objective's options for these small benchmarks;
the library holds only the schema (``tf_mmcl.training.default_config``) and its validation.

``m3_digits`` (image, audio, text; docs/m3_digits.md) is read from its tfds build
(``dataset.source = "tfds"``, Symile-M3's structure ``m3_digits/symile_m3_5``: the image is
retrieved from text + audio), built on first use or by ``python tools/make_dataset.py
m3_digits/symile_m3_5`` (needs espeak-ng, or ``--config.dataset.params.clip_source=<clip library
directory>``); ``--config.dataset.tfds_name=m3_digits/default`` trains the pairwise task instead.

From Python (tests, notebooks)::

    from configs.benchmark import benchmark_config   # with the repository root on sys.path
    config = benchmark_config("symile_xor", "clip")
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

# Per benchmark: generator parameters, model and training settings sized for a CPU in minutes.
BENCHMARKS = {
    "symile_xor": {
        "params": dict(d_v=5, p_hat=1.0, n_train=4096, n_val=512, n_test=1000, num_modalities=3, seed=0),
        "encoder": dict(hidden_units=(), output_dim=16),
        "embedding_dim": 16,
        "batch_size": 128,
        "learning_rate": 0.02,
        "epochs": 5,
    },
    "confu_xor": {
        "params": dict(
            d=5,
            p_hat=1.0,
            n_train=4096,
            n_val=512,
            n_test=1000,
            embed_dim=config_dict.placeholder(int),
            noise_std=0.0,
            seed=0,
        ),
        "encoder": dict(hidden_units=(), output_dim=16),
        "embedding_dim": 16,
        "batch_size": 128,
        "learning_rate": 0.02,
        "epochs": 5,
    },
    "fragility": {
        "params": dict(
            n_bits=1,
            dim=32,
            p_misaligned=0.1,
            p_weak=0.1,
            p_missing=0.1,
            p_flip=0.1,
            a_rule="xor",
            embed_mode="xor_only",
            n_train=4096,
            n_val=512,
            n_test=1000,
            seed=0,
        ),
        "encoder": dict(hidden_units=(64,), output_dim=32),
        "embedding_dim": 32,
        "batch_size": 128,
        "learning_rate": 0.005,
        "epochs": 5,
    },
    "misalignment": {
        "params": dict(
            semantics_n=6,
            modality_n=2,
            selected=(0, 1, 2, 3),
            perturbed=(3,),
            change_prob=0.75,
            n_train=4096,
            n_val=512,
            n_test=1000,
            cond_pool=2000,
            seed=0,
        ),
        "encoder": dict(hidden_units=(64,), output_dim=32),
        "embedding_dim": 8,
        "batch_size": 128,
        "learning_rate": 0.005,
        "epochs": 5,
    },
    # Symile-M3's structure (w = 5 languages): the image is the retrieval target, from the text
    # (5 digit names, one per language) and the audio (speech in one of the languages). The
    # encoders of the reproduction (configs/reproduce/m3_digits.py), with the audio's log-mel front
    # end in the graph (so the exported model takes waveforms); text: vocab_size / max_length from
    # the dataset's character vocabulary (added by benchmark_config; max_length fits every config).
    "m3_digits": {
        "source": "tfds",
        "tfds_name": "m3_digits/symile_m3_5",
        "params": dict(clip_source=""),
        "encoder": dict(hidden_units=(64,), output_dim=64),
        "encoders": {
            "image": dict(type="image", filters=(16, 32), output_dim=64),
            "audio": dict(type="audio", input_type="waveform", num_mel_bins=32, filters=(16, 32), output_dim=64),
            "text": dict(type="text", embed_dim=32, num_layers=1, num_heads=2, ff_dim=64),
        },
        "embedding_dim": 32,
        "batch_size": 128,
        "learning_rate": 0.002,
        "epochs": 10,
    },
}

# Objective options that make each method fast and effective on these small benchmarks (every
# other option keeps the objective's default). Listed keys can be overridden on the command line,
# e.g. --config.model.objective_options.similarity=lp.
OBJECTIVE_OPTIONS = {
    "clip": {"similarity": "cosine", "p": 2.0, "lp_power": True, "normalize": True, "lp_negatives": "cross_modal"},
    "symile": {"negative_sampling": "n"},
    "confu": {"lam": 0.5, "fusion_dropout": 0.0},
    "gram": {},
    "triangle": {},
    # The gate's default key_dim (256) is far too slow for these benchmarks on a CPU.
    "gated_symile": {"negative_sampling": "pair", "num_negatives": 15, "key_dim": 16},
}

# Pairs that train longer than their benchmark's epochs: on the XOR benchmarks the fusion heads
# (ConFu) and the gate (Gated Symile) need one epoch more than the plain objectives.
EPOCHS = {
    ("symile_xor", "confu"): 6,
    ("symile_xor", "gated_symile"): 6,
    ("confu_xor", "confu"): 6,
    ("confu_xor", "gated_symile"): 6,
}


def benchmark_config(benchmark: str, objective: str, **objective_options) -> ml_collections.ConfigDict:
    """The complete config of ``objective`` on ``benchmark`` (see the module docstring).

    Args:
        benchmark: a key of :data:`BENCHMARKS`.
        objective: a registered objective name (``tf_mmcl.objectives.names()``) (one without an entry in
            :data:`OBJECTIVE_OPTIONS` starts from its own defaults).
        **objective_options: options added to (or replacing) the objective's listed ones.

    Raises:
        ValueError: for an unknown benchmark or objective, naming the known ones.
    """
    from tf_mmcl import objectives
    from tf_mmcl.training import default_config

    if benchmark not in BENCHMARKS:
        raise ValueError(f"Unknown benchmark {benchmark!r}; expected one of {sorted(BENCHMARKS)}.")
    objectives.get_class(objective)  # an unknown name: the error lists the registered objectives
    preset = BENCHMARKS[benchmark]
    c = default_config()
    c.dataset.name = benchmark
    c.dataset.source = preset.get("source", "generator")
    c.dataset.tfds_name = preset.get("tfds_name", "")
    c.dataset.params = ml_collections.ConfigDict(dict(preset["params"]))
    c.model.objective = objective
    c.model.embedding_dim = preset["embedding_dim"]
    c.model.encoder.update(preset["encoder"])
    encoders = {m: dict(spec) for m, spec in preset.get("encoders", {}).items()}
    if benchmark == "m3_digits":
        from tf_mmcl.datasets.m3_digits import VOCABULARY
        from tf_mmcl.datasets.m3_digits.languages import MAX_TEXT_LENGTH

        # 12 character slots per word, up to 10 words (symile_m3_10); shorter texts are accepted.
        encoders["text"].update(vocab_size=len(VOCABULARY), max_length=10 * MAX_TEXT_LENGTH)
    c.model.encoders = ml_collections.ConfigDict(encoders)
    c.model.objective_options = ml_collections.ConfigDict(
        dict(OBJECTIVE_OPTIONS.get(objective, {}), **objective_options)
    )
    c.batch_size = preset["batch_size"]
    c.learning_rate = preset["learning_rate"]
    c.epochs = EPOCHS.get((benchmark, objective), preset["epochs"])
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """``arg``: ``"<benchmark>,<objective>"``, e.g. ``configs/benchmark.py:symile_xor,clip``."""
    parts = [p.strip() for p in (arg or "").split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(
            f"configs/benchmark.py takes '<benchmark>,<objective>' after a colon, e.g. "
            f"--config configs/benchmark.py:symile_xor,symile (got {arg!r}); benchmarks: {sorted(BENCHMARKS)}, "
            f"objectives: {list(OBJECTIVE_OPTIONS)}."
        )
    return benchmark_config(*parts)
