"""Data formats, one registry: ``@register_format`` and ``get_format``. Importing this package
registers the built-ins, one module each; ``auto`` detection tries them in this order."""

from datamodules.formats.registry import FORMATS, KINDS, Format, detect_format, get_format, register_format
from datamodules.formats import feedback_collection, prometheus, alpaca_eval, autoj_single, hh_rlhf, pair_sets  # noqa: F401,E402
from datamodules.formats import rewardbench  # noqa: F401,E402
from datamodules.formats import records  # noqa: F401,E402  (the fallback, registered last)

__all__ = ["FORMATS", "KINDS", "Format", "detect_format", "get_format", "register_format"]
