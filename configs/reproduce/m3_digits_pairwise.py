"""Experiment 6, m3_digits: Symile-M3's 2->1 task (text from image + audio) at toy scale.

Data: `m3_digits/default` (5 languages, 6000 / 1000 train / test, 1 s clips), built once into
`data_dir` with espeak-ng (about 1.5-4 min; then a no-op). Tests use `tiny` from the cached clip
library (`clip_source`). Audio: log-mel spectrograms (32 bands) precomputed once and
standardised per band, summarised by their per-band mean and std over time (a 2-stage CNN on the
whole spectrogram is the `audio_features="log_mel"` option: on 2 CPU cores it did not pick up the
language within the quick budget). Same small encoders and budget for every method: a
2-stage CNN on the 8x8 scans, a 1-hidden-layer MLP on the audio statistics, a 1-layer
Transformer on the characters; 32-d embeddings, batch 256, AdamW lr 2e-3, weight decay 0.01.
Full: 1200 steps (about 51 epochs), 3 seeds; quick: 400 steps of batch 128 (about 8.5 epochs),
2 seeds. Method options as in the XOR experiments; Gated Symile with key_dim 32 and 31 sampled
negatives per row (CPU).
"""

import importlib.util
from pathlib import Path

import ml_collections

_spec = importlib.util.spec_from_file_location("_reproduce_common", Path(__file__).with_name("common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def _method(label, objective, **options):
    return ml_collections.ConfigDict({"label": label, "objective": objective, "options": options})


def get_config(arg=None):
    """The experiment's config; ``arg="quick"``: the quick variant (fewer seeds/steps)."""
    c = ml_collections.ConfigDict()
    c.num_seeds = 3
    c.data_dir = "~/tensorflow_datasets"
    c.dataset_config = "default"
    c.clip_source = ""  # "" = render with espeak-ng when building; or a clip library directory
    c.num_mel_bins = 32
    c.n_train = 0  # 0 = the whole train split; otherwise a seed-dependent subset of that size
    c.image_encoder = {"filters": (16, 32), "output_dim": 64}
    # "log_mel_stats": per-band mean/std over time -> MLP (audio_encoder = MLPEncoder args);
    # "log_mel": the spectrogram -> AudioEncoder CNN (audio_encoder = e.g. {"filters": (8, 16), "output_dim": 64}).
    c.audio_features = "log_mel_stats"
    c.audio_encoder = {"hidden_units": (128,), "output_dim": 64}
    c.text_encoder = {"embed_dim": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64}
    c.embedding_dim = 32
    c.batch_size = 256
    c.steps = 1200
    c.learning_rate = 2e-3
    c.weight_decay = 0.01
    c.methods = [
        _method("Symile", "symile", negative_sampling="n"),
        _method("ConFu", "confu", lam=0.5),
        _method("Gated Symile", "gated_symile", key_dim=32, num_negatives=31, seed=0),
        _method("CLIP", "clip"),
        _method("GRAM", "gram"),
    ]
    return common.variant(c, arg, quick={"num_seeds": 2, "steps": 400, "batch_size": 128})
