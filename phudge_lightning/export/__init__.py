"""``phudge export``: write a judge as a folder to share (this project's format, an ensemble, or a
standard transformers model with its model card); the formats themselves are
``phudge_lightning.formats``'s."""

from phudge_lightning.export.command import main

__all__ = ["main"]
