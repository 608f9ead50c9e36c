"""Conv6Embedder on a CUDA GPU: embedding and pre-training rates, float32 and
bfloat16 autocast, as fractions of the GPU's matmul rates measured in the same
run (issue 24).

Run on a machine with CUDA (``benchmarks/gpu_check.sh`` does, on a lent device
machine): ``python benchmarks/bench_gpu.py --out benchmarks/results/gpu``.
Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_info, write_result  # noqa: E402

from fscc_sklearn import Conv6Embedder  # noqa: E402

GFLOP_EMBED = 1.150  # per 32^3 subtomogram, width 64 (docs/performance.md)
GFLOP_TRAIN = 3.34  # per training sample: forward, input and weight gradients


def matmul_rate(dtype, tf32: bool, n: int = 8192, repeats: int = 10) -> float:
    """TFLOP/s of an n^3 matrix product on the GPU (mean of ``repeats``)."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def embed_rate(emb, X, repeats: int = 3) -> float:
    emb.transform(X[:256])  # warm-up: cuDNN's algorithm search
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        emb.transform(X)  # returns numpy: synchronised
        times.append(time.perf_counter() - start)
    return len(X) / float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-embed", type=int, default=4096)
    parser.add_argument("--n-train", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n_embed, 32, 32, 32)).astype(np.float32)
    y = np.repeat(np.arange(8), args.n_train // 8)
    Xt = X[: len(y)]
    res = {
        "environment": machine_info(packages=("torch",)),
        "gpu": torch.cuda.get_device_name(),
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "ceilings_tflops": {
            "float32": matmul_rate(torch.float32, tf32=False),
            "tf32": matmul_rate(torch.float32, tf32=True),
            "bfloat16": matmul_rate(torch.bfloat16, tf32=False),
        },
        "parameters": vars(args) | {"out": str(args.out)},
        "runs": {},
    }
    torch.backends.cuda.matmul.allow_tf32 = False  # torch's default
    for amp in (False, True):
        name = "bfloat16 autocast" if amp else "float32"
        emb = Conv6Embedder(
            device="cuda", amp=amp, max_epochs=args.epochs, random_state=0,
            progress=False,
        )  # fmt: skip
        start = time.perf_counter()
        emb.fit(Xt, y)
        fit_s = time.perf_counter() - start
        epochs = [row["dur"] for row in emb.history]
        train_rate = len(y) / float(np.median(epochs[1:] or epochs))
        rate = embed_rate(emb, X)
        res["runs"][name] = {
            "train_per_s": train_rate,
            "train_tflops": train_rate * GFLOP_TRAIN / 1e3,
            "fit_s": fit_s,
            "epoch_s": epochs,
            "losses": list(emb.history[:, "train_loss"]),
            "embed_per_s": rate,
            "embed_tflops": rate * GFLOP_EMBED / 1e3,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        }
        torch.cuda.reset_peak_memory_stats()
        print(name, json.dumps(res["runs"][name]), flush=True)
    write_result(args.out, res, markdown(res))
    return 0


def markdown(res: dict) -> str:
    c = res["ceilings_tflops"]
    lines = [
        "# Conv6Embedder on a GPU (issue 24)\n",
        f"{res['gpu']}, CUDA {res['torch_cuda']}, cuDNN {res['cudnn']}, torch "
        f"{res['environment'].get('torch')}, {res['environment']['date_utc']}. "
        f"Matmul rates in this run: float32 {c['float32']:.1f}, TF32 {c['tf32']:.1f}, "
        f"bfloat16 {c['bfloat16']:.1f} TFLOP/s. Width 64, 32^3, default recipe "
        "(batch 64); cuDNN chooses its own convolution precision (TF32 allowed by "
        "torch's default for convolutions).\n",
        "| precision | train /s | train TFLOP/s | embed /s | embed TFLOP/s | "
        "peak GiB | losses |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in res["runs"].items():
        losses = ", ".join(f"{v:.3f}" for v in r["losses"])
        lines.append(
            f"| {name} | {r['train_per_s']:.0f} | {r['train_tflops']:.2f} | "
            f"{r['embed_per_s']:.0f} | {r['embed_tflops']:.2f} | "
            f"{r['peak_memory_gib']:.1f} | {losses} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
