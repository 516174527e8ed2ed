"""The registry of judge formats on disk, and the one ``load`` and ``save`` over it (see the
package's docstring for the protocol a format follows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT = "default"
# The judge shipped in the package: phudge_lightning/judges/default.
SHIPPED = Path(__file__).resolve().parents[1] / "judges" / DEFAULT


class CheckpointError(ValueError):
    """A path that is no judge, or one that cannot be read; the message is one line."""


class Format:
    """A kind of judge on disk. Subclasses set ``name`` and ``looks_like`` and define ``holds``;
    they define ``checkpoint`` (one judge's weights in Lightning's form) or override ``read``,
    and ``write`` where the format can be written."""

    name: str = ""
    looks_like: str = ""  # for error messages: what a path of this kind holds

    @classmethod
    def holds(cls, path: Path) -> bool:
        raise NotImplementedError

    @classmethod
    def checkpoint(cls, path: Path) -> dict[str, Any]:
        """The checkpoint at ``path`` as Lightning writes it: ``state_dict`` (the trained weights
        at least), ``hyper_parameters``, ``prompt_settings``, and whatever else the kind holds."""
        raise CheckpointError(f"{path} is {cls.looks_like}, not one judge's checkpoint: Judge.load and phudge grade, "
                              f"evaluate, rank, serve read it; this command takes {expected(with_checkpoint=True)}")

    @classmethod
    def read(cls, path: Path):
        """The judge at ``path`` (anything ``model/scoring.py`` describes), on the CPU."""
        return module_from_checkpoint(_checkpoint(cls, path))

    @classmethod
    def check(cls, path: Path) -> None:
        """Raise ``CheckpointError`` when ``path`` cannot be read, without reading its weights."""

    write = None  # or a classmethod write(module, path, **options) -> Path


FORMATS: dict[str, type[Format]] = {}


def register(cls: type[Format]) -> type[Format]:
    """Class decorator: add a format to ``FORMATS``. Paths are tested in registration order."""
    if not cls.name or not cls.looks_like:
        raise TypeError(f"format {cls.__name__} must set name and looks_like")
    if cls.name in FORMATS and FORMATS[cls.name] is not cls:
        raise ValueError(f"a format named {cls.name!r} is already registered ({FORMATS[cls.name]!r})")
    FORMATS[cls.name] = cls
    return cls


def has_checkpoint(kind: type[Format]) -> bool:
    return kind.checkpoint.__func__ is not Format.checkpoint.__func__


def expected(with_checkpoint: bool = False) -> str:
    """What a judge path may be, from the registry: "A, B or C"."""
    *rest, last = [k.looks_like for k in FORMATS.values() if has_checkpoint(k) or not with_checkpoint]
    return f"{', '.join(rest)} or {last}" if rest else last


def resolve(path: str | Path) -> Path:
    """``path``, or the shipped judge's folder for ``"default"``."""
    if str(path) != DEFAULT:
        return Path(path)
    if not SHIPPED.is_dir() or not any(kind.holds(SHIPPED) for kind in FORMATS.values()):
        raise FileNotFoundError(f"the shipped judge is missing from {SHIPPED}: reinstall the package, or pass a checkpoint")
    return SHIPPED


def kind_of(path: str | Path) -> type[Format]:
    """The format of the judge at ``path`` (or ``"default"``), checked to be readable (its
    ``check``); ``CheckpointError`` (one line) naming every registered format when it is none."""
    path = resolve(path)
    for kind in FORMATS.values():
        if kind.holds(path):
            kind.check(path)
            return kind
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: expected {expected()}")
    what = "a folder" if path.is_dir() else "a file"
    raise CheckpointError(f"{path} is {what} but not a judge checkpoint: expected {expected()}")


def checkpoint_kind(path: str | Path) -> type[Format]:
    """The format of ``path``, which must hold one judge's checkpoint (for ``--ckpt_path``);
    ``CheckpointError`` for any other (an ensemble, a transformers folder), saying why."""
    kind = kind_of(path)
    if not has_checkpoint(kind):
        kind.checkpoint(resolve(path))  # raises, in the kind's words
    return kind


def _checkpoint(kind: type[Format], path: Path) -> dict[str, Any]:
    try:
        return kind.checkpoint(path)
    except CheckpointError:
        raise
    except Exception as e:  # a truncated or foreign file: say which, in one line
        raise CheckpointError(f"{path} looks like {kind.looks_like} but cannot be read: "
                              f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """One judge's checkpoint at ``path`` in Lightning's form, whatever its format."""
    path = resolve(path)
    return _checkpoint(kind_of(path), path)


def check_paths(paths) -> None:
    """Every path is a judge that can be read (before loading any: an ensemble should not fail halfway)."""
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        kind_of(path)


def module_from_checkpoint(checkpoint: dict[str, Any]):
    """A ``JudgeModule`` built from a checkpoint's hyper-parameters, with its weights, in eval mode."""
    from phudge_lightning.model.module import JudgeModule

    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k != "_instantiator"}
    module = JudgeModule(**hparams)
    module.on_load_checkpoint(checkpoint)  # prompt settings; checks and completes the trained weights
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def load(path: str | Path | list = DEFAULT, map_location: str = "cpu"):
    """The judge at ``path``, in eval mode on ``map_location``: a ``JudgeModule``, a
    ``TransformersJudge`` or a ``JudgeEnsemble``, whatever the format (``"default"``: the shipped
    judge). Several paths: one ensemble of them all (an ensemble among them counts as its members)."""
    if not isinstance(path, (str, Path)):
        paths = list(path)
        check_paths(paths)
        if len(paths) == 1:
            return load(paths[0], map_location)
        from phudge_lightning.model.ensemble import JudgeEnsemble
        from phudge_lightning.model.inference import members

        return JudgeEnsemble([m for p in paths for m in members(load(p))]).to(map_location).eval()
    path = resolve(path)
    return kind_of(path).read(path).to(map_location).eval()


def save(judge, path: str | Path, format: str = "judge", **options) -> Path:
    """Write ``judge`` to ``path`` in ``format`` (one that can be written: see ``FORMATS``)."""
    writable = [name for name, kind in FORMATS.items() if kind.write is not None]
    if format not in FORMATS or FORMATS[format].write is None:
        raise ValueError(f"cannot write format {format!r}: the writable formats are {', '.join(writable)}")
    return FORMATS[format].write(judge, Path(path), **options)
