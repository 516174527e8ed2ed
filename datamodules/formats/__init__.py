"""Data formats, one registry: ``@register_format`` and ``get_format``. Importing this package
registers the built-ins, one module each; ``auto`` detection tries them in this order."""

from datamodules.formats.registry import (DETECT_ROWS, FORMATS, KINDS, Format, detect_format, detect_rows, get_format,
                                         register_format)
# Preference Collection's rows hold Feedback Collection's orig_instruction too: its detector first.
from datamodules.formats import preference_collection  # noqa: F401,E402
from datamodules.formats import feedback_collection, prometheus, alpaca_eval, autoj_single, hh_rlhf, pair_sets  # noqa: F401,E402
from datamodules.formats import truthfulqa, llmeval2, gsm8k, halueval  # noqa: F401,E402
# The generic chosen/rejected layout after the specific ones (HH-RLHF, RewardBench) whose rows it would accept.
from datamodules.formats import rewardbench, shp, chosen_rejected  # noqa: F401,E402
from datamodules.formats import records  # noqa: F401,E402  (the fallback, registered last)

__all__ = ["DETECT_ROWS", "FORMATS", "KINDS", "Format", "detect_format", "detect_rows", "get_format", "register_format"]
