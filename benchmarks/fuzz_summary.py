"""Gather the fuzzers' results into benchmarks/results/fuzz.{json,md} (issue 21).

Reads what the fuzzers wrote (nothing is run again):

- fuzz_readers.json: ``fuzz_readers.py``, damaged MRC files and particle lists,
- fuzz_model_files*.json: ``fuzz_model_files.py``, one per seed,
- fuzz_cli.json: ``fuzz_cli.py``, the argument parser,
- fuzz_replay.json: ``fuzz_model_files.py --replay``, earlier findings crafted
  again and loaded with today's code.

    python benchmarks/fuzz_summary.py
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

from _machine import write_result

RESULTS = Path(__file__).parent / "results"


def _load(name: str):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _model_command(r: dict) -> str:
    p = r["parameters"]
    return (
        f"nice -n 5 python benchmarks/fuzz_model_files.py --examples {p['examples']} "
        f"--seed {p['seed']} --jobs {p['jobs']} --time-limit {p['time_limit']:g}"
    )


def summary() -> dict:
    """One row per target: inputs, calls, outcomes, peak memory, command."""
    rows = []
    readers = _load("fuzz_readers.json")
    if readers:
        p = readers["parameters"]
        for name, t in readers["targets"].items():
            o = t["outcomes"]
            rows.append({
                "target": f"readers: {name}", "inputs": t["examples"],
                "calls": t["calls"],
                "ok": o.get("ok", 0) + o.get("ok_with_warning", 0),
                "clean_error": o.get("clean_error", 0),
                "unexpected": o.get("unexpected", 0),
                "peak_rss_mb": readers.get("peak_rss_mb"),
                "seconds": readers["seconds"],
                "command": "nice -n 5 python benchmarks/fuzz_readers.py "
                f"--examples {p['examples']} --seed {p['seed']} "
                "--out benchmarks/results/fuzz_readers",
            })  # fmt: skip
    for path in sorted(RESULTS.glob("fuzz_model_files*.json")):
        r = json.loads(path.read_text())
        res, o = r["result"], r["result"]["outcomes"]
        rows.append({
            "target": f"model files (seed {r['parameters']['seed']})",
            "inputs": res["files"], "calls": res["files"], "ok": o.get("ok", 0),
            "clean_error": o.get("clean_error", 0)
            + o.get("clean_error_at_predict", 0),
            "clean_error_at_predict": o.get("clean_error_at_predict", 0),
            "unexpected": o.get("unexpected", 0),
            "peak_rss_mb": max(r["peak_rss_mb"], res["worker_peak_rss_mb_max"]),
            "tracemalloc_peak_mb_max": res["tracemalloc_peak_mb_max"],
            "seconds": r["seconds"], "command": _model_command(r),
            "source": path.name,
        })  # fmt: skip
    cli = _load("fuzz_cli.json")
    if cli:
        res, o = cli["result"], cli["result"]["outcomes"]
        rows.append({
            "target": "CLI argument parser", "inputs": res["command_lines"],
            "calls": res["command_lines"], "ok": o.get("parsed", 0),
            "clean_error": o.get("usage_error", 0),
            "unexpected": o.get("unexpected", 0), "peak_rss_mb": cli["peak_rss_mb"],
            "seconds": cli["seconds"],
            "command": "nice -n 5 python benchmarks/fuzz_cli.py --examples "
            f"{cli['parameters']['examples']} --seed {cli['parameters']['seed']}",
        })  # fmt: skip
    totals = collections.Counter()
    for row in rows:
        kind = row["target"].split(" ")[0].rstrip(":")
        totals[f"{kind}_calls"] += row["calls"]
        totals[f"{kind}_unexpected"] += row["unexpected"]
    return {"rows": rows, "totals": dict(totals)}


def _findings() -> list[str]:
    lines = []
    for path in sorted(RESULTS.glob("fuzz_model_files*.json")):
        r = json.loads(path.read_text())
        kinds = collections.Counter()
        example = {}
        for f in r["result"]["unexpected"]:
            key = f["detail"].split(":")[0] + ": " + f["detail"].split(":", 2)[-1][:70]
            kinds[key] += 1
            example.setdefault(key, f)
        for key, n in kinds.most_common():
            f = example[key]
            where = f"case {f['case']}, {f['base']}, {f['mutations']}"
            lines.append(f"- {path.name}: {n} x `{key.strip()}` (e.g. {where})")
    return lines


def markdown(s: dict) -> str:
    out = ["# Fuzzing: readers, model files, command line (issue 21)\n"]
    out.append(
        "| target | inputs | calls | ok | clean error | unexpected | peak RSS MB "
        "| seconds |\n|---|---|---|---|---|---|---|---|"
    )
    for r in s["rows"]:
        out.append(
            f"| {r['target']} | {r['inputs']} | {r['calls']} | {r['ok']} | "
            f"{r['clean_error']} | {r['unexpected']} | {r['peak_rss_mb']:.0f} | "
            f"{r['seconds']:.0f} |"
        )
    out.append(
        "\nok: the reader returned a well-formed result (warnings included), the "
        "model file loaded and predicted finite, well-formed labels and "
        "probabilities on a small input, the command line parsed with every value "
        "in its range. Clean error: a ValueError / FileNotFoundError / MemoryError "
        "with a message naming the file (readers); a one-line ValueError at load "
        "(ModelFileError included) or the estimator's own one-line ValueError at "
        "predict (model files; counted in the JSON as clean_error_at_predict); exit "
        "2 with one `fscc <command>: error:` line (CLI). Unexpected: anything else, "
        "a multi-line message, a message blaming the input, or a malformed result. "
        "Peak RSS: ru_maxrss of the fuzzing process (the largest worker for the "
        "model files, which run in --jobs processes)."
    )
    t = s["totals"]
    out.append(
        f"\nTotals: {t.get('readers_calls', 0)} reader calls "
        f"({t.get('readers_unexpected', 0)} unexpected), "
        f"{t.get('model_calls', 0)} model files ({t.get('model_unexpected', 0)} "
        f"unexpected), {t.get('CLI_calls', 0)} command lines "
        f"({t.get('CLI_unexpected', 0)} unexpected).\n"
    )
    out.append("Commands:\n")
    out += [f"- {r['target']}: `{r['command']}`" for r in s["rows"]]
    findings = _findings()
    if findings:
        out.append("\nUnexpected outcomes of the model-file fuzz, by kind:\n")
        out += findings
    replayed = _load("fuzz_replay.json")
    if replayed:
        now = collections.Counter(c["now"] for c in replayed["cases"])
        out.append(
            f"\nThose findings crafted again with today's code (fuzz_replay.md): "
            f"{len(replayed['cases'])} cases, "
            + ", ".join(f"{n} {k}" for k, n in sorted(now.items()))
            + "."
        )
    return "\n".join(out) + "\n"


def main() -> int:
    s = summary()
    write_result(RESULTS / "fuzz", s, markdown(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
