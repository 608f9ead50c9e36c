"""The CUDA path (issue 24): train, embed and adapt on a GPU, AMP, save there
and load on a CPU-only process.

Marked ``gpu``, so the default run leaves them out (pyproject's addopts); on a
machine with CUDA: ``python -m pytest -m gpu tests/test_gpu.py -o addopts=""``
(``benchmarks/gpu_check.sh`` runs them on a lent device machine). Without CUDA
they fail, they do not skip.
"""

import subprocess
import sys

import joblib
import numpy as np
import pytest
import torch
from sklearn.pipeline import Pipeline

from fscc_sklearn import CalibratedFewShotClassifier, adapt, load_model, save_model

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu_pipeline(toy_data, tiny_embedder):
    assert torch.cuda.is_available(), "the gpu tests need CUDA"
    X, y, _, _ = toy_data
    pipe = Pipeline(
        [
            ("embed", tiny_embedder(device="cuda", max_epochs=3)),
            ("clf", CalibratedFewShotClassifier(random_state=0)),
        ]
    )
    return pipe.fit(X, y)


def _on_cpu_only(code: str, tmp_path) -> None:
    """Run ``code`` in a fresh process that sees no GPU."""
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "", "PYTHONPATH": ":".join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)


def test_training_and_embedding_run_on_the_gpu(gpu_pipeline, toy_data):
    X, _, _, _ = toy_data
    emb = gpu_pipeline.named_steps["embed"]
    assert emb.device_ == "cuda"
    assert all(p.is_cuda for p in emb.module_.parameters())
    losses = emb.history[:, "train_loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    F = emb.transform(X)
    assert F.dtype == np.float32 and F.shape == (len(X), emb.module_.num_features)
    assert np.isfinite(F).all() and (F >= 0).all()
    # the CPU-only prepacking stays off the GPU path
    assert type(emb._inference_module().blocks[0]).__name__ != "_ToOneDNN"


def test_model_file_saved_on_gpu_predicts_the_same_on_a_cpu(
    gpu_pipeline, toy_data, tmp_path
):
    _, _, X_novel, _ = toy_data
    save_model(gpu_pipeline, tmp_path / "gpu.safetensors")
    np.save(tmp_path / "x.npy", X_novel)
    np.save(tmp_path / "gpu_features.npy", gpu_pipeline[:-1].transform(X_novel))
    _on_cpu_only(
        "import numpy as np, torch\n"
        "from fscc_sklearn import load_model\n"
        "assert not torch.cuda.is_available()\n"
        "m = load_model('gpu.safetensors')\n"
        "np.save('cpu_features.npy', m[:-1].transform(np.load('x.npy')))\n",
        tmp_path,
    )
    gpu, cpu = (
        np.load(tmp_path / "gpu_features.npy"),
        np.load(tmp_path / "cpu_features.npy"),
    )
    # cuDNN (TF32 by default for convolutions) against oneDNN float32
    assert np.linalg.norm(gpu - cpu) / np.linalg.norm(cpu) < 1e-2
    assert load_model(tmp_path / "gpu.safetensors", device="cuda")[0].device_ == "cuda"


def test_joblib_of_a_gpu_pipeline_loads_on_a_cpu(gpu_pipeline, toy_data, tmp_path):
    _, _, X_novel, y_novel = toy_data
    few = adapt(gpu_pipeline, X_novel[::3], y_novel[::3])  # adapted on the GPU
    joblib.dump(few, tmp_path / "gpu.joblib")
    np.save(tmp_path / "x.npy", X_novel)
    np.save(tmp_path / "gpu_pred.npy", few.predict(X_novel))
    _on_cpu_only(
        "import joblib, numpy as np, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "m = joblib.load('gpu.joblib')\n"
        "assert m[0].device_ == 'cpu', m[0].device_\n"
        "np.save('cpu_pred.npy', m.predict(np.load('x.npy')))\n",
        tmp_path,
    )
    agree = np.mean(
        np.load(tmp_path / "gpu_pred.npy") == np.load(tmp_path / "cpu_pred.npy")
    )
    assert agree >= 0.98  # TF32 rounding may flip a query on a class boundary


def test_amp_bfloat16_training_follows_float32(toy_data, tiny_embedder):
    # bfloat16 has float32's exponent range, so no loss scaling is needed: the
    # check is that the AMP loss curve follows the float32 one and every
    # weight stays a finite float32
    X, y, _, _ = toy_data
    fp32 = tiny_embedder(device="cuda", max_epochs=4).fit(X, y)
    amp = tiny_embedder(device="cuda", max_epochs=4, amp=True).fit(X, y)
    a, b = fp32.history[:, "train_loss"], amp.history[:, "train_loss"]
    assert np.isfinite(b).all() and b[-1] < b[0]
    np.testing.assert_allclose(b, a, rtol=0.1)
    for p in amp.module_.parameters():
        assert p.dtype == torch.float32 and torch.isfinite(p).all()
    F32, F16 = fp32.transform(X), amp.transform(X)
    assert F16.dtype == np.float32 and np.isfinite(F16).all()
    assert F16.shape == F32.shape
