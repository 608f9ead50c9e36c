"""Fuzz the ``fscc`` argument parser with hypothesis (issue 21).

Random subcommands, options and values (huge and negative integers, NaN,
infinities, ``1e309``, ``1_0``, empty and random text): each command line
must give a namespace whose values are in their declared ranges, or a usage
error (exit 2) whose last line is argparse's ``fscc <command>: error: ...``;
anything else counts as unexpected. The strategy is the one of
``tests/test_user_errors.py::test_fuzzed_command_lines_parse_or_are_usage_errors``
run on many more examples.

    nice -n 5 python benchmarks/fuzz_cli.py --examples 100000 --seed 0

writes benchmarks/results/fuzz_cli.json and .md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import math
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from fscc_sklearn.cli import build_parser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import (  # noqa: E402
    load_at_start,
    machine_info,
    peak_rss_mb,
    write_result,
)

# the range each custom argument type promises (by the type function's name)
_RANGES = {
    "_positive_int": lambda v: isinstance(v, int) and v >= 1,
    "_non_negative_int": lambda v: isinstance(v, int) and v >= 0,
    "_positive_float": lambda v: math.isfinite(v) and v > 0,
    "_non_negative_float": lambda v: math.isfinite(v) and v >= 0,
    "_fraction": lambda v: 0 < v <= 1,
}


def _commands():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return sub.choices


def command_lines(commands):
    """Hypothesis strategy of ``fscc`` command lines (without ``fscc``)."""
    values = st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["0", "-1", "1", "nan", "inf", "-inf", "1e309", "", "1_0"]),
        st.text(max_size=8),
    )

    @st.composite
    def lines(draw):
        name = draw(st.sampled_from(sorted(commands)))
        options = [
            a
            for a in commands[name]._actions
            if a.option_strings and a.dest not in ("help",)
        ]
        argv = [name, "x"]
        for action in draw(st.lists(st.sampled_from(options), max_size=4)):
            argv.append(action.option_strings[-1])
            if action.nargs != 0:
                argv.append(draw(values))
        return argv

    return lines()


def classify(parser, commands, argv) -> tuple[str, str | None]:
    """(outcome, detail): ``parsed``, ``usage_error`` or ``unexpected``."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(argv)
    except SystemExit as exc:
        last = (err.getvalue().strip().splitlines() or [""])[-1]
        if exc.code == 2 and last.startswith(
            (f"fscc {argv[0]}: error: ", "fscc: error: ")
        ):
            return "usage_error", None
        return "unexpected", f"exit {exc.code}: {last[:200]}"
    except Exception as exc:  # noqa: BLE001 - anything else is a finding
        return "unexpected", f"{type(exc).__name__}: {exc!s:.200}"
    for action in commands[argv[0]]._actions:
        check = _RANGES.get(getattr(action.type, "__name__", None))
        value = getattr(args, action.dest, None)
        if check is not None and value is not None:
            for v in value if isinstance(value, list) else [value]:
                if not check(v):
                    return "unexpected", f"{action.dest} = {v!r} out of range"
    return "parsed", None


def fuzz(n_examples: int = 200, random_seed: int = 0) -> dict:
    """Parse ``n_examples`` generated command lines; return the tallies."""
    commands, parser = _commands(), build_parser()
    counts, per_command = collections.Counter(), collections.Counter()
    findings = []

    @seed(random_seed)
    @settings(
        max_examples=n_examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(command_lines(commands))
    def run(argv):
        outcome, detail = classify(parser, commands, argv)
        counts[outcome] += 1
        per_command[argv[0]] += 1
        if outcome == "unexpected" and len(findings) < 20:
            findings.append({"argv": argv, "detail": detail})

    run()
    return {
        "examples": n_examples,
        "command_lines": sum(counts.values()),
        "outcomes": dict(counts),
        "per_command": dict(per_command),
        "unexpected": findings,
    }


def _markdown(result: dict) -> str:
    env, p, r = result["environment"], result["parameters"], result["result"]
    o = r["outcomes"]
    lines = [
        "# Fuzzing the command-line parser\n",
        f"`nice -n 5 python benchmarks/fuzz_cli.py --examples {p['examples']} "
        f"--seed {p['seed']}` (hypothesis {env['hypothesis']}, "
        f"{result['seconds']:.0f} s, load average {load_at_start(env):.1f}, "
        f"peak RSS {result['peak_rss_mb']:.0f} MB).\n",
        f"{r['command_lines']} command lines: {o.get('parsed', 0)} parsed with every "
        f"value in range, {o.get('usage_error', 0)} usage errors (exit 2, one "
        f"`fscc <command>: error:` line), {o.get('unexpected', 0)} unexpected.\n",
        "Per command: "
        + ", ".join(f"{k} {v}" for k, v in sorted(r["per_command"].items()))
        + ".",
    ]
    lines += [f"- {f['argv']}: {f['detail']}" for f in r["unexpected"][:10]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "fuzz_cli")
    )
    args = parser.parse_args(argv)
    env = machine_info(packages=("hypothesis",))
    start = time.perf_counter()
    res = fuzz(args.examples, args.seed)
    result = {
        "parameters": {"examples": args.examples, "seed": args.seed},
        "environment": env,
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": peak_rss_mb(),
        "result": res,
    }
    write_result(args.out, result, _markdown(result))
    return 1 if res["outcomes"].get("unexpected", 0) else 0


if __name__ == "__main__":
    sys.exit(main())
