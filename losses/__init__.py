"""Losses, one registry: ``@register_loss`` and ``get_loss``. Importing this package registers the built-ins."""

from losses.registry import LOSSES, get_entry, get_loss, register_loss
from losses.targets import soft_targets
from losses import causal, ordinal, pairwise, regression  # noqa: F401  (register the built-ins)

__all__ = ["LOSSES", "get_entry", "get_loss", "register_loss", "soft_targets"]
