"""The one check that a number is finite, for every place a number is accepted:
command-line options (``finite_float`` as an argparse ``type``), JSON parameters
and experiment files (``check_finite``). NaN and infinities are refused."""
from __future__ import annotations

import argparse
import math

from mslesseg_nnunet.errors import UserError


def is_finite_number(value) -> bool:
    """True for an int or float (not bool) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def check_finite(value, name: str) -> float:
    """``value`` as a float; UserError naming ``name`` unless it is a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise UserError(f"{name}: expected a finite number, got {value!r}")
    return number


def finite_float(text: str) -> float:
    """argparse ``type=``: a finite float (``nan``, ``inf`` are refused, exit 2)."""
    try:
        return check_finite(text, "value")
    except UserError:
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}") from None
