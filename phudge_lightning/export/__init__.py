"""``phudge export``: write a judge as a folder to share and load it back."""

from phudge_lightning.export.folder import export, load_export, main

__all__ = ["export", "load_export", "main"]
