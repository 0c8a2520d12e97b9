"""tools/extract_features.py and tools/train_heads.py on the tiny Symile-M3 config, with
randomly initialised presets this test saves under $TF_MMCL_PRESETS (real loading code)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(args, env=None, timeout=600):
    env = dict(
        os.environ if env is None else env,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
    )
    return subprocess.run([sys.executable] + args, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.parametrize("tool", ["extract_features.py", "train_heads.py"])
def test_help_does_not_import_tensorflow(tool):
    script = (
        f"import sys, runpy; sys.argv = ['{tool}', '--help']\n"
        "try:\n"
        f"    runpy.run_path('tools/{tool}', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('TF', 'tensorflow' in sys.modules)\n"
    )
    proc = _run(["-c", script])
    assert "--config" in proc.stdout and "TF False" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.slow
def test_extract_then_train_heads_then_serve_raw_inputs(tmp_path):
    pytest.importorskip("keras_hub")
    from tests.hub import hub_utils as hu
    from tf_mmcl.hub import save_random_preset
    from tf_mmcl.hub.pipeline import write_tensor_records

    presets = tmp_path / "presets"
    for i, arch in enumerate(("clip_vision", "whisper", "xlm_roberta")):
        save_random_preset(str(presets / f"tf_mmcl_tiny_{arch}"), arch, seed=i)
    x = hu.trio_inputs(n=12)
    x["label"] = np.arange(12) % 2
    x["text"] = x["text"][:, :4]  # padded to sequence_length=6 by the pipeline
    os.makedirs(tmp_path / "data")
    write_tensor_records(str(tmp_path / "data" / "part0.tfrecord"), {k: v[:8] for k, v in x.items()})
    write_tensor_records(str(tmp_path / "data" / "part1.tfrecord"), {k: v[8:] for k, v in x.items()})
    env = dict(os.environ, TF_MMCL_PRESETS=str(presets))
    feats = str(tmp_path / "features")
    common = [
        "--config",
        "configs/hub/symile_m3_tiny.py",
        f"--config.data.tfrecords={tmp_path}/data/*.tfrecord",
        f"--config.features_dir={feats}",
    ]
    # (Resuming after a kill is tested on the library, tests/hub/test_features.py.)
    done = _run(["tools/extract_features.py", *common, "--quiet"], env)
    assert "12 rows in 2 shard(s), complete" in done.stdout, done.stderr[-3000:]
    manifest = json.load(open(os.path.join(feats, "manifest.json")))
    assert manifest["encoders"]["text"]["padding_id"] == 1
    assert manifest["encoders"]["image"]["preset"] == "tf_mmcl_tiny_clip_vision"
    # Other encoders into the same directory: refused in one line.
    mixed = _run(["tools/extract_features.py", *common, "--config.encoders.text.pooling=cls"], env)
    assert mixed.returncode != 0 and "must not mix" in mixed.stderr

    train = _run(
        ["tools/train_heads.py", *common, f"--workdir={tmp_path}/run", f"--export_dir={tmp_path}/serving"], env
    )
    assert train.returncode == 0, train.stderr[-3000:]
    version = os.path.join(tmp_path, "serving", "symile_m3_tiny", "1")
    np.savez(
        tmp_path / "in.npz",
        **{
            m: x[m][:3] if m != "text" else np.pad(x["text"][:3], ((0, 0), (0, 2)), constant_values=1)
            for m in ("image", "audio", "text")
        },
    )
    report = json.loads(
        hu.run_tf_only(hu.TF_ONLY_SCRIPT, version, str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
        .strip()
        .splitlines()[-1]
    )
    assert report["imported"] == [] and report["input_dtypes"]["text"] == "int32"
    out = np.load(tmp_path / "out.npz")
    assert out["text_embedding"].shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(out["audio_embedding"], axis=1), 1.0, atol=1e-5)
