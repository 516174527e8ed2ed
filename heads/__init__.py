"""Heads, one registry: ``@register_head`` and ``get_head``. Importing this package registers the built-ins."""

from heads.registry import HEADS, check_loss, get_head, register_head
from heads import causal, classification, regression  # noqa: F401  (register the built-ins)
from heads.causal import parse_score

__all__ = ["HEADS", "check_loss", "get_head", "register_head", "parse_score"]
