"""The ``mslesseg`` command: a thin parser that dispatches to library functions.

Each sub-command lives in ``mslesseg_nnunet/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args)``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from mslesseg_nnunet import __version__
from mslesseg_nnunet.errors import UserError

# One module per sub-command, in the order `mslesseg --help` lists them.
COMMAND_MODULES = [
    "env",
    "synth",
    "convert",
    "relabel",
    "ensemble",
    "tune",
    "predict",
    "evaluate",
    "cpu_plans",
    "trainers",
    "lesions",
    "recipe",
    "run",
    "status",
    "demo",
    "report",
    "consensus",
    "merge",
    "matrix",
    "preprocess",
    "to_native",
    "segment",
    "normalise",
    "gin_views",
]


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse parser whose errors are one line and exit with code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="mslesseg",
        description="nnU-Net v2 tools for the MSLesSeg and MSSEG-2 challenges.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=OneLineErrorParser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"mslesseg_nnunet.commands.{name}").register(subparsers)
    return parser


def os_error_message(exc: OSError) -> str:
    """``path: reason`` on one line for an OS error (both paths of a failed rename)."""
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    return f"{paths}: {reason}" if paths else reason


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"mslesseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # permissions, full disk, a file where a folder should be, ...
        print(f"mslesseg {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mslesseg {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
