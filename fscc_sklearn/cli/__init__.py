"""The ``fscc`` command: a thin shell over the public API; all printing is here.

The package: ``_parser`` (the argument parser, no library code), ``_common``
(errors, messages, output checks), ``_inputs`` and ``_data`` (reading a
command's inputs), one module per command group (``_simulate``, ``_train``,
``_predict`` for adapt and predict, ``_evaluate``, ``_demo``). A command's
module is imported only once its command line is parsed, so ``fscc --help``
imports no torch.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import warnings

from ._common import Interrupted, UserError
from ._parser import DEFAULT_MODEL, build_parser

__all__ = ["DEFAULT_MODEL", "build_parser", "main"]


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"fscc: warning: {str(message).splitlines()[0]}", file=sys.stderr)


def _check_device(args) -> None:
    """One line instead of torch's traceback for a device this machine lacks."""
    device = getattr(args, "device", "auto")
    if not str(device).startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "no visible GPU"
        raise UserError(
            f"--device {device}: torch {torch.__version__} has {build}; use "
            "--device cpu (or auto)"
        )
    index = str(device).partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise UserError(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA "
            f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})"
        )


def _command(spec: str):
    """The function ``"module:function"`` of this package names."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


# what bad input or a bad file raises: one line on stderr (the traceback with
# --debug); anything else is a bug and keeps its traceback
_USER_ERRORS = (UserError, ValueError, TypeError, OSError, MemoryError, ImportError)


def main(argv: list[str] | None = None) -> int:
    """Run ``fscc``; returns the exit code (0 ok, 1 error, 2 usage, 130 Ctrl-C)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n_jobs == 0:
        parser.error("--n-jobs must be a positive number or -1")
    args.argv = argv
    debug = args.debug or bool(os.environ.get("FSCC_DEBUG"))
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            _check_device(args)
            _setup_runtime(args)
            _command(args.func)(args)
        except KeyboardInterrupt as exc:
            if debug:
                traceback.print_exc()
            detail = f": {exc}" if isinstance(exc, Interrupted) else ""
            print(f"fscc {args.command}: interrupted{detail}", file=sys.stderr)
            return 130
        except _USER_ERRORS as exc:
            if debug:
                traceback.print_exc()
            print(f"fscc {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 1
        except RuntimeError as exc:
            if not _out_of_memory(exc):
                raise
            if debug:
                traceback.print_exc()
            print(
                f"fscc {args.command}: error: out of memory: {_one_line(exc)} (a "
                "smaller --batch-size may help)",
                file=sys.stderr,
            )
            return 1
    return 0


def _out_of_memory(exc: RuntimeError) -> bool:
    """torch's allocation failures (GPU or CPU), which are RuntimeErrors."""
    return type(exc).__name__ == "OutOfMemoryError" or (
        "can't allocate memory" in str(exc)
    )


def _one_line(exc: BaseException) -> str:
    """The error's message on one line (its type when it has none)."""
    message = " ".join(str(exc).split())
    if isinstance(exc, MemoryError):
        return "out of memory" + (f": {message}" if message else "")
    return message or type(exc).__name__


def _setup_runtime(args) -> None:
    # OpenMP threads that spin while waiting lose most of their time on a
    # shared machine (embedding 10/s against 105/s with PASSIVE, 2 threads at
    # load 10); libgomp reads this when torch loads, i.e. on the next line
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..embedding._runtime import tune_malloc

    # an application may set process-wide malloc behaviour; the library may not
    tune_malloc()  # measured: embedding 110/s -> 165/s on 2 idle cores
    if args.n_jobs is not None and args.command != "simulate":
        import torch

        torch.set_num_threads(os.cpu_count() if args.n_jobs < 0 else args.n_jobs)


if __name__ == "__main__":
    sys.exit(main())
