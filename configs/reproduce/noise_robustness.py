"""Experiment 5, noise robustness (ConFu poster's SNR table) on the audio-visual `m3_digits`.

The data, encoders and training budget of experiment 6 (configs/reproduce/m3_digits.py: image
CNN, audio log-mel statistics MLP, character Transformer, 32-d embeddings, batch 256, AdamW
2e-3, 1200 steps); the poster's methods (ConFu, Symile, GRAM, TRIANGLE, CLIP; CLIP also scored
from one modality, its Tri-CLIP (V) / (A) rows). Trained on clean data; at test time the image
pixels or the audio waveform get Gaussian noise at 10 / 15 / 20 dB SNR.
"""

import ml_collections


def _method(label, objective, **options):
    return ml_collections.ConfigDict({"label": label, "objective": objective, "options": options})


def get_config():
    """The experiment's config; `quick` holds the overrides of `--quick`."""
    c = ml_collections.ConfigDict()
    c.num_seeds = 3
    c.data_dir = "~/tensorflow_datasets"
    c.dataset_config = "default"
    c.clip_source = ""  # "" = render with espeak-ng when building; or a clip library directory
    c.num_mel_bins = 32
    c.n_train = 0
    c.image_encoder = {"filters": (16, 32), "output_dim": 64}
    c.audio_features = "log_mel_stats"
    c.audio_encoder = {"hidden_units": (128,), "output_dim": 64}
    c.text_encoder = {"embed_dim": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64}
    c.embedding_dim = 32
    c.batch_size = 256
    c.steps = 1200
    c.learning_rate = 2e-3
    c.weight_decay = 0.01
    c.snr_dbs = [10, 15, 20]
    c.degraded = ["audio", "image"]
    c.methods = [
        _method("ConFu", "confu", lam=0.5),
        _method("Symile", "symile", negative_sampling="n"),
        _method("GRAM", "gram"),
        _method("TRIANGLE", "triangle"),
        _method("CLIP", "clip"),
    ]
    c.quick = ml_collections.ConfigDict({"num_seeds": 2, "steps": 400, "batch_size": 128})
    return c
