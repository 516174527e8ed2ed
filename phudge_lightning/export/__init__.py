"""``phudge export``: write a judge as a folder to share (this project's format, or a standard
transformers model with its model card) and load it back."""

from phudge_lightning.export.command import main
from phudge_lightning.export.folder import export, load_export

__all__ = ["export", "load_export", "main"]
