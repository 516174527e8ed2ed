"""Judges on disk: every kind a judge is kept in, one module each, behind one ``load`` and one ``save``.

    from phudge_lightning import formats
    judge = formats.load("runs/paper/.../best-epoch=0-step=9.ckpt")   # a file, a DeepSpeed folder ...
    judge = formats.load("default")                                   # the judge shipped in the package
    judge = formats.load(["seed1.ckpt", "seed2.ckpt"])                # several: one ensemble
    formats.save(module, "my-judge/", "judge")                        # or "hf", "peft", "ensemble"

The formats, tried in this order (the first whose ``holds`` is true reads the path):

- ``judge`` (``judge_folder.py``): a folder from ``phudge export`` (``judge.json``);
- ``deepspeed`` (``deepspeed.py``): a folder from ``phudge fit`` under DeepSpeed;
- ``lightning`` (``lightning.py``): a ``.ckpt`` file from ``phudge fit``;
- ``ensemble`` (``ensemble.py``): several judge folders and ``ensemble.json``;
- ``peft`` (``peft.py``): a peft adapter folder (``adapter_config.json``, a sequence classifier of
  the base model it names), from ``phudge export --format peft`` or saved as the PHUDGE authors
  saved theirs, or its hub id;
- ``hf`` (``hf.py``): a transformers folder from ``phudge export --format hf``, or its hub id.

Adding a format is one module holding one class, registered with ``@register`` and imported
below (where it goes in the order). The class subclasses ``registry.Format`` and sets:

- ``name``: what ``kind_of(path).name`` and ``save(..., format=name)`` call it;
- ``looks_like``: what a path of this kind holds, in words: the error for a path that is no
  judge lists every format's;
- ``holds(path) -> bool``: whether ``path`` (a ``Path``; it may not exist, for an id) is of this
  kind: cheap, no weights read;
- ``checkpoint(path) -> dict``, for a kind that holds one judge's weights in Lightning's form
  (``state_dict``, ``hyper_parameters``, ``prompt_settings``): then ``read`` builds the
  ``JudgeModule`` from it, and ``phudge validate/test/predict --ckpt_path`` take the path; or
- ``read(path)``: the judge itself, anything ``model/scoring.py`` describes (``predict_scores``,
  ``tokenizer``, ``prompt_settings``, ``score_range``);
- optionally ``check(path)``, which raises ``CheckpointError`` for a path of this kind that
  would fail to load (cut short, members missing), without reading weights: ``kind_of`` calls
  it, so commands refuse a bad path before loading any; and
- ``write(judge, path, **options) -> path`` for a kind that can be written.

Errors are ``CheckpointError``, one line; the commands print it and exit 2. The package reads
``phudge_lightning.model`` and nothing above it: ``Judge``, ``phudge export``, the commands
and the CLI's ``--ckpt_path`` (``trainer_io.JudgeCheckpointIO``) call it, never the reverse.
"""

from phudge_lightning.formats.registry import (DEFAULT, FORMATS, CheckpointError, Format, check_paths, expected,
                                               kind_of, load, read_checkpoint, register, resolve, save)
# The formats register themselves on import, in the order paths are tried.
from phudge_lightning.formats import judge_folder, deepspeed, lightning, ensemble  # noqa: E402,F401  isort: skip
# An adapter's hub id before hf's, which takes any hub id.
from phudge_lightning.formats import peft, hf  # noqa: E402,F401  isort: skip

__all__ = ["DEFAULT", "FORMATS", "CheckpointError", "Format", "check_paths", "expected", "kind_of", "load",
           "read_checkpoint", "register", "resolve", "save"]
