"""Fuzz ``load_model`` with crafted model files (issue 21).

Valid saved models are mutated as an attacker would (metadata: type swaps,
range extremes, nesting, huge strings, removed and added keys; tensors: dtype,
shape and value changes) and the content hash is recomputed, since it has no
key. Each file goes through :func:`fscc_sklearn.load_model`; the outcome is

- ``ok``: it loads and predicts a finite, well-formed answer on a small input,
- ``clean_error``: a ``ValueError`` (``ModelFileError`` included) with a
  one-line message,
- ``clean_error_at_predict``: it loads and ``predict`` refuses with the
  estimator's own one-line ``ValueError``,
- ``unexpected``: anything else, a multi-line message, a message blaming the
  input, or a malformed prediction.

    nice -n 5 python benchmarks/fuzz_model_files.py --examples 100000 --seed 0

writes benchmarks/results/fuzz_model_files.json and .md. ``tests/reliability``
runs a short version.
"""

from __future__ import annotations

import argparse
import collections
import copy
import io
import json
import sys
import tempfile
import time
import traceback
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from fscc_sklearn import (
    CalibratedFewShotClassifier,
    Conv6Embedder,
    DistributionCalibrationClassifier,
    load_model,
    save_model,
)
from fscc_sklearn.calibration._novelty import unknown_label_for
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.io import SubtomogramNormalizer
from fscc_sklearn.persistence._format import content_hash

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import (  # noqa: E402
    load_at_start,
    machine_info,
    peak_rss_mb,
    write_result,
)

_V1 = Path(__file__).resolve().parents[1] / "tests" / "data" / "model_v1"
_NEST = "__FUZZ_NEST__"
_ODD = [
    *(None, True, False, 0, 1, -1, 2.5, -0.0, 1e308, -1e308, 1e-308, 10**30),
    *(-(2**63), 2**64, float("nan"), float("inf"), float("-inf"), "", "evil"),
    *("NaN", "1e9", "\u202e", [], {}, [1, 2], [[]], {"a": 1}, ["a", 1], [None]),
]


def _read(path):
    with safe_open(str(path), framework="numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        return tensors, json.loads(f.metadata()["fscc_sklearn"])


def base_models(workdir: Path) -> dict:
    """name -> (tensors, metadata, probe input) of small valid model files."""
    from sklearn.pipeline import Pipeline

    X, y = make_toy_volumes(n_classes=4, n_per_class=8, box=8, random_state=0)
    y = np.array([f"c{v}" for v in y])
    pipe = Pipeline(
        [
            ("normalize", SubtomogramNormalizer()),
            ("embed", Conv6Embedder(module__width=4, max_epochs=1, random_state=0)),
            ("clf", CalibratedFewShotClassifier(random_state=0)),
        ]
    ).fit(X, y)
    rng = np.random.default_rng(0)
    F = rng.gamma(2.0, size=(60, 4)) + np.repeat(np.eye(3, 4) * 5, 20, 0)
    yb = np.repeat(["a", "b", "c"], 20)
    S = np.array([[9.0, 0, 1, 9], [8, 1, 0, 9], [0, 9, 9, 1], [1, 8, 9, 0]])
    probe = np.array([[9.0, 1, 0, 8], [0, 8, 9, 1], [40, 40, 40, 40]])
    base = CalibratedFewShotClassifier(random_state=0).fit(F, yb)
    novel = CalibratedFewShotClassifier(base=base, k=1, reject="auto")
    novel.fit(S, ["x", "x", "y", "y"])
    dc_base = DistributionCalibrationClassifier(n_samples=20, random_state=0)
    dc = DistributionCalibrationClassifier(
        dc_base.fit(F, yb), k=1, n_samples=20, random_state=0
    ).fit(S, ["x", "x", "y", "y"])
    out = {}
    for name, model, x in [
        ("pipeline_width4", pipe, X[:2]),
        ("novel_reject_auto", novel, probe),
        ("paper_recipe", dc, probe),
    ]:
        path = save_model(model, workdir / f"{name}.safetensors", {"seed": 0})
        out[name] = (*_read(path), x)
    for name in ("bayes_adapted", "paper_adapted"):
        out[f"v1_{name}"] = (*_read(_V1 / f"{name}.safetensors"), X[:2])
    return out


# -- mutations ----------------------------------------------------------------


def _paths(obj, path=()):
    if path:
        yield path
    if isinstance(obj, dict):
        for key, sub in obj.items():
            yield from _paths(sub, (*path, key))
    elif isinstance(obj, list):
        for i, sub in enumerate(obj[:6]):
            yield from _paths(sub, (*path, i))


def _odd_value(rng, old):
    kind = rng.integers(8)
    if kind == 0:
        return "x" * int(10 ** rng.uniform(2, 5.5))  # huge string
    if kind == 1:
        return _NEST  # replaced by deep [[...]] in the JSON text
    if kind == 2 and isinstance(old, (int, float)) and not isinstance(old, bool):
        return (
            float(old) * 10.0 ** int(rng.integers(-3, 12)) * float(rng.choice([1, -1]))
        )
    if kind == 3:  # a type swap that keeps the content
        if isinstance(old, (int, float)):
            return str(old)
        if isinstance(old, str):
            return [old]
        if isinstance(old, list):
            return dict(enumerate(old)) if rng.random() < 0.5 else tuple(old)
        if isinstance(old, dict):
            return list(old.values())
    if kind == 4 and isinstance(old, list) and old:
        return old * int(rng.integers(2, 2000))  # long list
    return copy.deepcopy(_ODD[rng.integers(len(_ODD))])


def _mutate_info(info, rng) -> str:
    paths = list(_paths(info))
    *parents, last = paths[rng.integers(len(paths))]
    target = info
    for key in parents:
        target = target[key]
    op = rng.random()
    if op < 0.15:
        del target[last]
        return "remove"
    if op < 0.25:
        holder = target if isinstance(target, dict) else info
        holder[f"extra{rng.integers(100)}"] = _odd_value(rng, None)
        return "add"
    target[last] = _odd_value(rng, target[last])
    return "replace"


_MAX_TEXT = 20 * 2**20
_DTYPES = ["float16", "float64", "int8", "int32", "int64", "uint8", "bool", "bf16"]


def _mutate_tensors(tensors, rng) -> str:
    name = sorted(tensors)[rng.integers(len(tensors))]
    arr = tensors[name]
    op = rng.integers(6)
    if op == 0:
        dtype = _DTYPES[rng.integers(len(_DTYPES))]
        if dtype == "bf16":
            return "dtype bf16", name
        tensors[name] = arr.astype(dtype)
        return "dtype", name
    if op == 1:
        shapes = [arr.reshape(-1), arr[None], np.zeros((0, *arr.shape[1:]))]
        if arr.ndim:
            shapes += [arr[:-1], np.concatenate([arr, arr[:1]]), arr.T]
        tensors[name] = np.ascontiguousarray(shapes[rng.integers(len(shapes))])
        return "shape", name
    if op == 2 and arr.size and arr.dtype.kind == "f":
        bad = np.array([np.nan, np.inf, -np.inf, 1e38, -1e38], arr.dtype)
        out = arr.copy()
        out.flat[rng.integers(arr.size)] = bad[rng.integers(5)]
        tensors[name] = out
        return "value", name
    if op == 3 and arr.size and arr.dtype.kind in "fi":
        tensors[name] = np.asarray(-np.abs(arr) - 1, dtype=arr.dtype)
        return "negate", name
    if op == 4:
        del tensors[name]
        return "remove", name
    tensors[f"extra/{rng.integers(10)}"] = rng.normal(size=3).astype(np.float32)
    return "add", name


def craft(tensors0, info0, rng, path: Path) -> list[str]:
    """Write one mutated file at ``path``; return the mutations applied."""
    tensors, info = dict(tensors0), json.loads(json.dumps(info0))
    applied, bf16 = [], None
    for _ in range(rng.integers(1, 4)):
        if rng.random() < 0.7:
            applied.append("meta " + _mutate_info(info, rng))
        else:
            what, name = _mutate_tensors(tensors, rng)
            applied.append("tensor " + what)
            if what == "dtype bf16":
                bf16 = name
    info["content_sha256"] = content_hash(tensors, info)
    depth = int(10 ** rng.uniform(1, 5.3))
    text = json.dumps(info).replace(f'"{_NEST}"', "[" * depth + "]" * depth)
    if len(text) > _MAX_TEXT:  # safetensors writes at most 100 MB of header
        text = text[:_MAX_TEXT]  # still over the loader's limit, and cut
    if bf16 not in tensors:
        save_file(tensors, str(path), metadata={"fscc_sklearn": text})
    else:
        import torch
        from safetensors.torch import save_file as save_torch

        as_torch = {
            k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()
        }
        as_torch[bf16] = as_torch[bf16].float().to(torch.bfloat16)
        save_torch(as_torch, str(path), metadata={"fscc_sklearn": text})
    return applied


# -- outcome ------------------------------------------------------------------


def _check_prediction(model, X) -> None:
    pred = np.asarray(model.predict(X))
    assert pred.shape == (len(X),), f"predict shape {pred.shape}"
    classes = list(model.classes_)
    last = model[-1] if hasattr(model, "steps") else model
    if getattr(last, "reject", None) is not None:
        who = type(last).__name__
        classes_or_unknown = [
            *classes,
            unknown_label_for(last.unknown_label, classes, who),
        ]
    else:
        classes_or_unknown = classes
    for p in pred:
        assert p in classes_or_unknown, f"label {p!r} is not a class"
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X))
        assert proba.shape == (len(X), len(classes)), f"proba shape {proba.shape}"
        assert np.isfinite(proba).all(), "non-finite probabilities"
        assert np.allclose(proba.sum(1), 1, atol=1e-4), "rows do not sum to 1"


def classify(path: Path, X) -> tuple[str, str | None]:
    """(outcome, detail) of loading ``path`` and predicting ``X``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = load_model(path)
    except ValueError as exc:
        msg = str(exc)
        if not msg or "\n" in msg:
            return "unexpected", f"{type(exc).__name__} not one line: {msg[:200]!r}"
        return "clean_error", type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - anything else is a finding
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(tb.filename).name}:{tb.lineno}"
        return "unexpected", f"load: {type(exc).__name__} at {where}: {exc!s:.200}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _check_prediction(model, X)
    except ValueError as exc:
        # the model's own one-line refusal (e.g. reject='auto' without the
        # threshold fit sets, as the same estimator in memory answers); a
        # message blaming the input (sklearn's multi-line one) is a finding
        msg = str(exc)
        if msg and "\n" not in msg and not msg.startswith("Input X contains"):
            return "clean_error_at_predict", msg[:120]
        return "unexpected", f"predict: ValueError: {msg[:200]!r}"
    except Exception as exc:  # noqa: BLE001
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(tb.filename).name}:{tb.lineno}"
        return "unexpected", f"predict: {type(exc).__name__} at {where}: {exc!s:.200}"
    return "ok", None


_BASES: dict = {}


def _run_chunk(task) -> dict:
    """Cases ``range(lo, hi)``, each from its own seed; stop at ``deadline``."""
    lo, hi, random_seed, trace_every, deadline = task
    names = sorted(_BASES)
    per = {n: collections.Counter() for n in names}
    errors, mutations = collections.Counter(), collections.Counter()
    findings, traced, done = [], [], 0
    with tempfile.TemporaryDirectory(dir=_tmp_dir()) as tmp:
        path = Path(tmp) / "case.safetensors"
        for i in range(lo, hi):
            if deadline and time.time() > deadline:
                break
            name = names[i % len(names)]
            tensors0, info0, X = _BASES[name]
            rng = np.random.default_rng([random_seed, i])
            try:
                applied = craft(tensors0, info0, rng, path)
            except Exception as exc:  # noqa: BLE001 - the writer's limit, no case
                findings.append({"case": i, "base": name, "mutations": [],
                                 "detail": f"not written: {exc!s:.200}"})  # fmt: skip
                continue
            trace = trace_every and i % trace_every == 0
            if trace:
                tracemalloc.start()
            outcome, detail = classify(path, X)
            if trace:
                traced.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
            path.unlink()
            done += 1
            per[name][outcome] += 1
            mutations.update(applied)
            if outcome.startswith("clean_error"):
                errors[detail] += 1
            elif outcome == "unexpected":
                findings.append({"case": i, "base": name, "mutations": applied,
                                 "detail": detail})  # fmt: skip
    return {"done": done, "per": per, "errors": errors, "mutations": mutations,
            "findings": findings, "traced": traced,
            "rss_mb": peak_rss_mb()}  # fmt: skip


def _init_worker(bases):
    import torch

    torch.set_num_threads(1)  # tiny models: threads only contend
    _BASES.clear()
    _BASES.update(bases)


def fuzz(
    n_examples: int = 200,
    random_seed: int = 0,
    *,
    jobs: int = 1,
    time_limit: float | None = None,
    trace_every: int = 100,
    chunk: int = 250,
    bases: dict | None = None,
) -> dict:
    """Mutate up to ``n_examples`` files (spread over the base models, case
    ``i`` from seed ``[random_seed, i]``) until ``time_limit`` seconds; return
    the tallies. ``bases``: those of :func:`base_models`, built if None."""
    import multiprocessing

    deadline = time.time() + time_limit if time_limit else None
    if bases is None:
        with tempfile.TemporaryDirectory(dir=_tmp_dir()) as tmp:
            bases = base_models(Path(tmp))
    tasks = [
        (lo, min(lo + chunk, n_examples), random_seed, trace_every, deadline)
        for lo in range(0, n_examples, chunk)
    ]
    parts = []
    if jobs == 1:
        _init_worker(bases)
        parts = [_run_chunk(t) for t in tasks]
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs, _init_worker, (bases,)) as pool:
            for part in pool.imap_unordered(_run_chunk, tasks):
                parts.append(part)
                total = sum(p["done"] for p in parts)
                print(f"{total} files", file=sys.stderr, flush=True)
    names = sorted(bases)
    per = {n: sum((p["per"][n] for p in parts), collections.Counter()) for n in names}
    findings = sorted(
        (f for p in parts for f in p["findings"]), key=lambda f: f["case"]
    )
    traced = [t for p in parts for t in p["traced"]]
    return {
        "examples": n_examples,
        "files": sum(p["done"] for p in parts),
        "stopped_by_time_limit": sum(p["done"] for p in parts) < n_examples,
        "per_base": {n: dict(c) for n, c in per.items()},
        "outcomes": dict(sum(per.values(), collections.Counter())),
        "clean_error_types": dict(
            sum((p["errors"] for p in parts), collections.Counter())
        ),
        "mutations": dict(sum((p["mutations"] for p in parts), collections.Counter())),
        "not_written": sum(f["detail"].startswith("not written") for f in findings),
        "unexpected": findings[:200],
        "tracemalloc_cases": len(traced),
        "tracemalloc_peak_mb_max": max(traced, default=0) / 2**20,
        "tracemalloc_peak_mb_median": float(np.median(traced)) / 2**20 if traced else 0,
        "worker_peak_rss_mb_max": max((p["rss_mb"] for p in parts), default=0),
    }


def replay(result_paths, bases: dict | None = None) -> list[dict]:
    """Craft again the files behind the findings in earlier results (each case
    is deterministic in ``[seed, case]``) and classify them with today's
    loader: one row per finding, with its outcome then and now."""
    rows = []
    with tempfile.TemporaryDirectory(dir=_tmp_dir()) as tmp:
        if bases is None:
            bases = base_models(Path(tmp))
        names, path = sorted(bases), Path(tmp) / "case.safetensors"
        for result_path in result_paths:
            result = json.loads(Path(result_path).read_text())
            seed = result["parameters"]["seed"]
            for f in result["result"]["unexpected"]:
                if not f["mutations"]:  # the harness could not write it then
                    continue
                tensors0, info0, X = bases[names[f["case"] % len(names)]]
                rng = np.random.default_rng([seed, f["case"]])
                applied = craft(tensors0, info0, rng, path)
                outcome, detail = classify(path, X)
                rows.append({"source": Path(result_path).name, "seed": seed,
                             "case": f["case"], "mutations": applied,
                             "then": f["detail"], "now": outcome,
                             "detail": detail})  # fmt: skip
    return rows


def _tmp_dir():
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


_OUTCOMES = ("ok", "clean_error", "clean_error_at_predict", "unexpected")


def _markdown(result: dict) -> str:
    out = io.StringIO()
    env, p, r = result["environment"], result["parameters"], result["result"]
    o = r["outcomes"]
    out.write("# Fuzzing the model-file loader\n\n")
    out.write(
        f"`nice -n 5 python benchmarks/fuzz_model_files.py --examples {p['examples']} "
        f"--seed {p['seed']} --jobs {p['jobs']} --time-limit {p['time_limit']}` "
        f"({result['seconds']:.0f} s, load average {load_at_start(env):.1f}; peak RSS "
        f"{result['peak_rss_mb']:.0f} MB main process, "
        f"{r['worker_peak_rss_mb_max']:.0f} MB largest worker; tracemalloc peak per "
        f"case max {r['tracemalloc_peak_mb_max']:.2f} MB, median "
        f"{r['tracemalloc_peak_mb_median']:.2f} MB over {r['tracemalloc_cases']} "
        f"sampled cases).\n\n"
    )
    out.write(f"{r['files']} files: {o.get('ok', 0)} ok, {o.get('clean_error', 0)} "
              f"clean error at load, {o.get('clean_error_at_predict', 0)} clean error "
              f"at predict, {o.get('unexpected', 0)} unexpected.\n\n")  # fmt: skip
    out.write(
        "| base model | files | ok | clean error at load | clean error at predict "
        "| unexpected |\n|---|---|---|---|---|---|\n"
    )
    for name, c in r["per_base"].items():
        n = [c.get(k, 0) for k in _OUTCOMES]
        out.write(f"| {name} | {sum(c.values())} | " + " | ".join(map(str, n)) + " |\n")
    out.write("\nMutations applied: " + ", ".join(
        f"{k} {v}" for k, v in sorted(r["mutations"].items())) + ".\n")  # fmt: skip
    for f in r["unexpected"][:20]:
        out.write(
            f"\n- case {f['case']} ({f['base']}, {f['mutations']}): {f['detail']}"
        )
    return out.getvalue() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--time-limit", type=float, default=None, help="stop after this many seconds"
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "fuzz_model_files")
    )
    parser.add_argument(
        "--replay",
        nargs="+",
        metavar="RESULT_JSON",
        help="craft again the unexpected cases of earlier results and report "
        "what they give now (writes OUT.json and OUT.md)",
    )
    args = parser.parse_args(argv)
    env = machine_info(packages=("safetensors", "torch"))
    if args.replay:
        return _main_replay(args, env)
    start = time.perf_counter()
    res = fuzz(args.examples, args.seed, jobs=args.jobs, time_limit=args.time_limit)
    result = {
        "parameters": vars(args),
        "environment": env,
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": peak_rss_mb(),
        "result": res,
    }
    write_result(args.out, result, _markdown(result))
    return 1 if res["outcomes"].get("unexpected", 0) else 0


def _main_replay(args, env) -> int:
    rows = replay(args.replay)
    now = collections.Counter(r["now"] for r in rows)
    lines = [
        "# Earlier model-file fuzz findings, crafted again\n",
        f"`python benchmarks/fuzz_model_files.py --replay {' '.join(args.replay)} "
        f"--out {args.out}`\n",
        f"{len(rows)} cases: "
        + ", ".join(f"{v} {k}" for k, v in sorted(now.items()))
        + ".\n",
        "| source | case | then | now |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['source']} | {r['case']} | {r['then'][:60]} | {r['now']}"
        f"{': ' + r['detail'][:60] if r['detail'] else ''} |"
        for r in rows
        if r["now"] == "unexpected"
    ]
    write_result(
        args.out,
        {"parameters": vars(args), "environment": env, "cases": rows},
        "\n".join(lines) + "\n",
    )
    return 1 if now.get("unexpected") else 0


if __name__ == "__main__":
    sys.exit(main())
