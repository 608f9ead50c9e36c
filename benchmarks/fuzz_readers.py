"""Fuzz the file readers with hypothesis: damaged MRC files and particle lists.

Every generated input goes through the public readers; each call must either
return a well-formed result or raise a *clean* error (ValueError,
FileNotFoundError, MemoryError: exceptions with a message naming the file).
Any other exception type (IndexError, struct.error, TypeError, OverflowError,
...) or a malformed result counts as a failure.

    python benchmarks/fuzz_readers.py --examples 2000 --seed 0

writes benchmarks/results/fuzz_readers.json and .md (``fuzz_summary.py`` gathers
them into fuzz.md with the other fuzzers). ``tests/reliability`` runs a
short version by default and a long one with ``-m slow``.
"""

from __future__ import annotations

import argparse
import collections
import io
import struct
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import mrcfile
import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import example as explicit_example
from hypothesis import strategies as st

from fscc_sklearn.io import (
    extract_subtomograms,
    read_particle_list,
    read_subtomograms,
    read_voxel_size,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import (  # noqa: E402
    load_at_start,
    machine_info,
    peak_rss_mb,
    write_result,
)

#: Exceptions that count as a clean, user-facing error.
CLEAN_ERRORS = (ValueError, FileNotFoundError, MemoryError)

# (name, 32-bit word index) of the MRC2014 header fields worth corrupting
_MRC_INT_FIELDS = {
    "nx": 0, "ny": 1, "nz": 2, "mode": 3, "nxstart": 4, "mx": 7, "my": 8, "mz": 9,
    "mapc": 16, "mapr": 17, "maps": 18, "ispg": 22, "nsymbt": 23, "nversion": 27,
    "nlabl": 55,
}  # fmt: skip
_MRC_FLOAT_FIELDS = {"cella_x": 10, "cella_y": 11, "cella_z": 12, "dmean": 21}
_INTERESTING_INTS = [0, 1, -1, 2, 3, 4, 6, 12, 401, 100000, 2**31 - 1, -(2**31)]
_INTERESTING_FLOATS = [0.0, -1.0, 1e-30, 1e30, float("nan"), float("inf")]


def _base_mrc_files() -> dict[str, bytes]:
    """Small valid MRC files the mutations start from."""
    rng = np.random.default_rng(0)
    out = {}
    cases = {
        "volume": (rng.normal(size=(4, 5, 6)).astype(np.float32), None),
        "stack": (rng.normal(size=(3, 4, 4, 4)).astype(np.float32), None),
        "int16": (rng.integers(-50, 50, size=(4, 4, 4)).astype(np.int16), 2.5),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (data, voxel) in cases.items():
            path = Path(tmp) / f"{name}.mrc"
            with mrcfile.new(path) as mrc:
                mrc.set_data(data)
                if data.ndim == 4:
                    mrc.header.ispg = 401
                mrc.voxel_size = voxel if voxel is not None else 10.0
            out[name] = path.read_bytes()
    return out


BASE_MRC = _base_mrc_files()


def _mutate(raw: bytes, mutations) -> bytes:
    buf = bytearray(raw)
    for kind, arg in mutations:
        if kind == "truncate":
            del buf[min(arg, len(buf)) :]
        elif kind == "int":
            word, value = arg
            if len(buf) >= 4 * word + 4:
                buf[4 * word : 4 * word + 4] = struct.pack("<i", value)
        elif kind == "float":
            word, value = arg
            if len(buf) >= 4 * word + 4:
                buf[4 * word : 4 * word + 4] = struct.pack("<f", value)
        elif kind == "flip":
            for pos, byte in arg:
                if buf:
                    buf[pos % len(buf)] = byte
        elif kind == "append":
            buf.extend(arg)
        elif kind == "machst":
            if len(buf) >= 216:
                buf[212:216] = arg
    return bytes(buf)


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 1400)),
    st.tuples(
        st.just("int"),
        st.tuples(
            st.sampled_from(sorted(_MRC_INT_FIELDS.values())),
            st.sampled_from(_INTERESTING_INTS) | st.integers(-(2**31), 2**31 - 1),
        ),
    ),
    st.tuples(
        st.just("float"),
        st.tuples(
            st.sampled_from(sorted(_MRC_FLOAT_FIELDS.values())),
            st.sampled_from(_INTERESTING_FLOATS) | st.floats(width=32),
        ),
    ),
    st.tuples(
        st.just("flip"),
        st.lists(st.tuples(st.integers(0, 1500), st.integers(0, 255)), max_size=8),
    ),
    st.tuples(st.just("append"), st.binary(max_size=64)),
    st.tuples(
        st.just("machst"), st.sampled_from([b"DD\0\0", b"\x11\x11\0\0", b"\0\0\0\0"])
    ),
)

mrc_input = st.one_of(
    st.tuples(st.sampled_from(sorted(BASE_MRC)), st.lists(mutation, max_size=4)),
    st.tuples(st.just("random"), st.binary(max_size=2048)),
)


# ----------------------------------------------------------------------------
# particle lists

_STAR_COLUMNS = [
    "_rlnCoordinateX", "_rlnCoordinateY", "_rlnCoordinateZ", "_rlnClassNumber",
    "_rlnAngleRot", "_rlnAngleTilt", "_rlnAnglePsi", "_rlnTomoName", "_fsccLabel",
]  # fmt: skip
_CSV_COLUMNS = ["x", "y", "z", "label", "class", "phi", "theta", "psi", "tomogram"]
_TOKENS = [
    "0", "1", "-1", "12.5", "1e308", "-1e308", "1e400", "nan", "NaN", "inf",
    "-inf", "99999999999999999999999", "0x10", "1,5", "", " ", "abc", "1BXN",
    "vesicle", "fiducial", '"quoted name"', "'", '"', "#", "data_", "loop_",
    "_rlnCoordinateX", "\t", "é", "\x00", "\ufeff",
]  # fmt: skip

junk = st.sampled_from(_TOKENS) | st.text(max_size=6)
number = st.sampled_from(["0", "1", "12.5", "3", "100.25", "-2"])
# four in five cells are plausible values, so the parsers get past the header
cell = st.sampled_from(["number"] * 4 + ["junk"]).flatmap(
    lambda kind: number if kind == "number" else junk
)


@st.composite
def _rows(draw, n_cols: int, sep: str) -> list[str]:
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        n = n_cols if draw(st.integers(0, 4)) else draw(st.integers(0, n_cols + 2))
        rows.append(sep.join(draw(st.lists(cell, min_size=n, max_size=n))))
    return rows


def _columns(names, required):
    """Usually all ``required`` columns plus extras; sometimes any subset."""
    return st.one_of(
        st.lists(st.sampled_from(names), max_size=len(names)),
        st.lists(st.sampled_from(names), max_size=3).map(
            lambda extra: required + extra
        ),
    )


@st.composite
def star_text(draw) -> str:
    cols = draw(_columns(_STAR_COLUMNS, _STAR_COLUMNS[:3]))
    cols = list(dict.fromkeys(cols)) if draw(st.booleans()) else cols
    first = ["data_particles"] * 3 + ["", "# comment", "data_"]
    lines = [draw(st.sampled_from(first))]
    lines += ["loop_"] + [f"{c} #{i + 1}" for i, c in enumerate(cols)]
    lines += draw(_rows(len(cols), " "))
    return "\n".join(lines)


@st.composite
def csv_text(draw) -> str:
    cols = draw(_columns(_CSV_COLUMNS, _CSV_COLUMNS[:3]))
    cols = list(dict.fromkeys(cols)) if draw(st.booleans()) else cols
    sep = draw(st.sampled_from([",", ",", ",", "\t", ";"]))
    return "\n".join([sep.join(cols), *draw(_rows(len(cols), sep))])


@st.composite
def shrec_text(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        label = draw(st.sampled_from(["1BXN", "3cf3", "vesicle", "fiducial", "0"]))
        n = draw(st.sampled_from([3, 3, 6, 6, 6, 2, 7]))
        lines.append(" ".join([label, *draw(st.lists(cell, min_size=n, max_size=n))]))
    return "\n".join(lines)


particle_input = st.one_of(
    st.tuples(st.just("list.star"), st.sampled_from(["auto", "star"]), star_text()),
    st.tuples(st.just("list.csv"), st.sampled_from(["auto", "csv"]), csv_text()),
    st.tuples(
        st.just("particle_locations.txt"),
        st.sampled_from(["auto", "shrec19", "shrec21"]),
        shrec_text(),
    ),
    st.tuples(  # anything in any file
        st.sampled_from(["list.star", "list.csv", "particle_locations.txt", "x.dat"]),
        st.sampled_from(["auto", "star", "csv", "shrec19", "shrec21"]),
        st.one_of(star_text(), csv_text(), shrec_text(), st.text(max_size=300))
        | st.binary(max_size=300),
    ),
)


# ----------------------------------------------------------------------------
# extraction from arrays

_COORD_VALUES = [0.0, 1.0, 3.5, -0.5, -1.0, 7.49, 7.5, 1e9, -1e9, np.nan, np.inf]

extract_input = st.tuples(
    st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6)),
    st.lists(
        st.lists(
            st.sampled_from(_COORD_VALUES) | st.floats(),
            min_size=3,
            max_size=3,
        )
        | st.lists(st.floats(0, 6), min_size=0, max_size=4),
        max_size=5,
    ),
    st.sampled_from([1, 2, 3, 4, 5, 8, 0, 10**6, -1, 2.5, True, "4"]),
    st.sampled_from(["skip", "pad", "pad", "skip", "clip"]),
    st.sampled_from(["mean", "mean", 0.0, -3.5, np.nan, "median", None]),
)


# ----------------------------------------------------------------------------
# the targets


def _check_subtomograms(res, n_files: int = 1) -> None:
    X = res.X
    assert isinstance(X, np.ndarray) and X.dtype == np.float32 and X.ndim == 4, X
    assert len(res.filenames) == len(X) == len(res.index_in_file)
    assert res.voxel_size is None or (
        np.isfinite(res.voxel_size) and res.voxel_size > 0
    )


def _check_table(table) -> None:
    c = table.coords
    assert c.ndim == 2 and c.shape[1] == 3 and np.isfinite(c).all(), c
    if table.labels is not None:
        assert len(table.labels) == len(c)
    if table.angles is not None:
        assert table.angles.shape == (len(c), 3)


def _check_extracted(res, box) -> None:
    assert res.X.dtype == np.float32 and res.X.shape[1:] == (box,) * 3
    assert len(res.kept) == len(res.X)


def target_mrc(example, workdir: Path):
    kind, spec = example
    raw = BASE_MRC[kind] if kind != "random" else b""
    raw = _mutate(raw, spec) if kind != "random" else spec
    path = workdir / "fuzz.mrc"
    path.write_bytes(raw)
    calls = [
        ("read_subtomograms", lambda: _check_subtomograms(read_subtomograms(path))),
        ("read_subtomograms[list]",
         lambda: _check_subtomograms(read_subtomograms([path]))),
        ("read_voxel_size", lambda: read_voxel_size(path)),
        ("extract_subtomograms", lambda: _check_extracted(
            extract_subtomograms(path, [[1, 1, 1]], box=2, border="pad"), 2)),
    ]  # fmt: skip
    return calls


def target_particles(example, workdir: Path):
    name, fmt, content = example
    path = workdir / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    return [("read_particle_list", lambda: _check_table(read_particle_list(path, fmt)))]


def target_extract(example, workdir: Path):
    shape, coords, box, border, pad_value = example
    tomo = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)

    def call():
        try:  # ragged lists stay lists: the reader must reject them itself
            xyz = np.array(coords, dtype=float) if coords else np.empty((0, 3))
        except ValueError:
            xyz = coords
        pad = pad_value if pad_value is not None else "mean"
        res = extract_subtomograms(tomo, xyz, box, border, pad_value=pad)
        _check_extracted(res, box)

    return [("extract_subtomograms[array]", call)]


# Well-formed inputs every run starts with, so the success paths are always
# reached: which inputs hypothesis generates from a seed also depends on the
# modules loaded before it (it draws constants from them).
VALID = {
    "particle_list": [
        ("list.csv", "csv", "x,y,z\n1,2,3\n4.5,5,6\n"),
        ("list.csv", "auto", "x,y,z,label\n1,2,3,a\n"),
        ("particle_locations.txt", "shrec21", "1BXN 10 20 30 0 90 0\n"),
    ],
    "extract_array": [((4, 5, 6), [[1.0, 2.0, 3.0]], 2, "pad", None)],
}

TARGETS = {
    "mrc": (mrc_input, target_mrc),
    "particle_list": (particle_input, target_particles),
    "extract_array": (extract_input, target_extract),
}


def classify(call) -> tuple[str, str | None]:
    """Run one reader call; return (outcome, detail)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
    except CLEAN_ERRORS as exc:
        if not str(exc).strip():
            return "unexpected", f"{type(exc).__name__} with an empty message"
        return "clean_error", type(exc).__name__
    except AssertionError as exc:
        return "unexpected", f"malformed result: {exc!s:.200}"
    except Exception as exc:  # the point: anything else is a finding
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(tb.filename).name}:{tb.lineno}"
        return "unexpected", f"{type(exc).__name__} at {where}: {exc!s:.200}"
    return ("ok_with_warning" if caught else "ok"), None


def _fuzz_target(
    strategy, make_calls, n_examples: int, random_seed: int, valid=()
) -> dict:
    counts: collections.Counter = collections.Counter()
    kinds: collections.Counter = collections.Counter()
    findings: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)

        @seed(random_seed)
        @settings(
            max_examples=n_examples,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def run(case):
            for call_name, call in make_calls(case, workdir):
                outcome, detail = classify(call)
                counts[outcome] += 1
                if outcome == "clean_error":
                    kinds[detail] += 1
                if outcome == "unexpected" and len(findings) < 20:
                    text = repr(case)[:400]
                    findings.append(
                        {"call": call_name, "detail": detail, "input": text}
                    )

        for value in valid:
            run = explicit_example(value)(run)
        run()
    return {
        "examples": n_examples + len(valid),
        "calls": sum(counts.values()),
        "outcomes": dict(counts),
        "clean_error_types": dict(kinds),
        "unexpected": findings,
    }


def fuzz(n_examples: int = 200, random_seed: int = 0, targets=None) -> dict:
    """Run every target on ``n_examples`` hypothesis inputs; return the tallies."""
    return {
        name: _fuzz_target(*TARGETS[name], n_examples, random_seed, VALID.get(name, ()))
        for name in targets or TARGETS
    }


def _environment(threads_note: str) -> dict:
    return {
        **machine_info(packages=("mrcfile", "hypothesis")),
        "threads": threads_note,
    }


def _markdown(result: dict) -> str:
    out = io.StringIO()
    env, params = result["environment"], result["parameters"]
    out.write("# Fuzzing the file readers\n\n")
    out.write(
        f"`nice -n 5 python benchmarks/fuzz_readers.py --examples {params['examples']} "
        f"--seed {params['seed']}` (hypothesis {env['hypothesis']}, "
        f"{result['seconds']:.0f} s, load average {load_at_start(env):.1f}, "
        f"peak RSS {result.get('peak_rss_mb', float('nan')):.0f} MB).\n\n"
    )
    out.write("| target | inputs | reader calls | ok | ok + warning | clean error "
              "| unexpected |\n|---|---|---|---|---|---|---|\n")  # fmt: skip
    for name, r in result["targets"].items():
        o = r["outcomes"]
        out.write(
            f"| {name} | {r['examples']} | {r['calls']} | {o.get('ok', 0)} | "
            f"{o.get('ok_with_warning', 0)} | {o.get('clean_error', 0)} | "
            f"{o.get('unexpected', 0)} |\n"
        )
    out.write(
        "\nClean error = ValueError / FileNotFoundError / MemoryError with a "
        "message; unexpected = any other exception or a malformed result.\n"
    )
    for name, r in result["targets"].items():
        for f in r["unexpected"][:5]:
            out.write(f"\n- {name} / {f['call']}: {f['detail']}  \n  input: "
                      f"`{f['input'][:200]}`")  # fmt: skip
    return out.getvalue() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "fuzz_readers")
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    targets = fuzz(args.examples, args.seed)
    result = {
        "parameters": {"examples": args.examples, "seed": args.seed},
        "environment": _environment("single-threaded (no BLAS in the readers)"),
        "seconds": time.perf_counter() - start,
        "targets": targets,
        "peak_rss_mb": peak_rss_mb(),
    }
    total = sum(r["calls"] for r in targets.values())
    bad = sum(r["outcomes"].get("unexpected", 0) for r in targets.values())
    write_result(args.out, result, _markdown(result))
    print(f"{total} reader calls, {bad} unexpected")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
