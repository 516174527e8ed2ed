"""``phudge serve``: a judge over HTTP with dynamic batching (schemas, batcher, errors, limits, app)."""

from phudge_lightning.serve.app import create_app, main

__all__ = ["create_app", "main"]
