"""Every YAML config parses against the CLI (``phudge fit --config ...``) without running it.

The parser is ``PhudgeCLI``'s own (links and defaults included), built once with instantiation
and the run switched off; each config is then parsed as ``fit --config FILE``. Overlay files
(``configs/paper/*.yaml`` and ``configs/hub/*.yaml`` over ``train.yaml``, ``configs/judge-balanced-val.yaml`` over
``configs/judge.yaml``) are also parsed on top of their base, as the ``phudge fit`` line of their
header stacks them, and the merged model is built on a tiny local backbone so a head and loss that
do not fit show here.
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from datamodules import JudgeDataModule
from phudge_lightning.cli import PhudgeCLI
from phudge_lightning.model.module import JudgeModule

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").rglob("*.yaml")) + sorted((REPO / "configs").rglob("*.yml"))
TRAIN = REPO / "train.yaml"
ALL = CONFIGS + ([TRAIN] if TRAIN.exists() else [])
VAL_METRICS = {"val/loss", "val/pearson", "val/spearman", "val/kendall", "val/r2", "val/mae", "val/mse",
               "val/accuracy", "val/pearson_best"}


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


def header_stack(path: Path) -> list[Path] | None:
    """The ``--config`` files of the ``phudge fit`` line in ``path``'s header comment, if it has one."""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if "phudge fit" in line and "--config" in line:
            return [REPO / name for name in re.findall(r"--config\s+(\S+)", line)]
    return None


def stack(path: Path) -> list[Path]:
    """The config files to give, in order, to run ``path`` as documented: an overlay as its
    header's ``phudge fit`` line stacks it, any other file alone."""
    files = header_stack(path)
    if files and len(files) > 1:
        assert files[-1] == path, f"{_id(path)}: its header's phudge fit line does not end with it"
        return files
    return [path]


class ParseOnly(PhudgeCLI):
    """PhudgeCLI that parses its arguments and neither instantiates nor runs anything."""

    def instantiate_classes(self) -> None:
        pass

    def _run_subcommand(self, subcommand: str) -> None:
        pass


@pytest.fixture(scope="module")
def parser():
    argv, sys.argv = sys.argv, sys.argv[:1]  # (LightningCLI warns when it sees pytest's own arguments)
    try:
        cli = ParseOnly(JudgeModule, JudgeDataModule, args=["fit"],
                        parser_kwargs={"exit_on_error": False, "fit": {"exit_on_error": False}})
    finally:
        sys.argv = argv
    return cli.parser


def parse(parser, files: list[Path], *extra: str):
    args = ["fit"]
    for f in files:
        args += ["--config", str(f)]
    return parser.parse_args(args + list(extra)).fit


def test_there_are_configs():
    assert CONFIGS, "no YAML under configs/"


def test_parser_rejects_bad_configs(parser, tmp_path):
    from jsonargparse import ArgumentError

    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("model:\n  backbone: x\n  no_such_option: 1\n")
    with pytest.raises(ArgumentError):
        parse(parser, [bad_key])
    bad_value = tmp_path / "bad_value.yaml"
    bad_value.write_text("trainer:\n  precision: banana\n")
    with pytest.raises(ArgumentError):
        parse(parser, [bad_value])


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_config_parses_alone(parser, path):
    cfg = parse(parser, [path])
    assert cfg.model.backbone and cfg.model.head


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_config_as_run(parser, path, tiny_llama_dir, tiny_bert_dir):
    files = stack(path)
    cfg = parse(parser, files)
    model, data, trainer = cfg.model, cfg.data, cfg.trainer
    # The links: the tokenizer is the model's, and the data knows what the head needs.
    assert data.backbone == model.backbone and data.uses_lm_head == (model.head == "causal")
    assert trainer.use_distributed_sampler is False
    # An overlay's own model settings win over its base's.
    own = yaml.safe_load(path.read_text()) or {}
    for key, value in (own.get("model") or {}).items():
        if not isinstance(value, dict):
            assert getattr(model, key) == value, (_id(path), key)
    # The head and loss fit each other (and plugins import): build the model on a tiny backbone of its kind.
    settings = {**model.as_dict(), "backbone": str(tiny_bert_dir if model.backbone == "minilm-l6" else tiny_llama_dir)}
    if settings.get("lora"):
        # Which layers and modules LoRA adapts names the real backbone's; the tiny one has others.
        settings["lora"] = {k: v for k, v in settings["lora"].items() if k not in ("layers_to_transform", "target_modules")}
    module = JudgeModule(**settings)
    assert module.head.name == model.head
    # A local data file must be there (relative paths are from the repository root).
    sources = [s["data"] if isinstance(s, dict) else s for s in (data.sources or [])]
    for key, spec in [(k, getattr(data, k)) for k in ("data", "val_data", "test_data", "predict_data")] + \
            [(f"sources[{i}]", spec) for i, spec in enumerate(sources)]:
        if spec and spec != "demo" and Path(spec).suffix in (".json", ".jsonl", ".parquet", ".gz"):
            target = Path(spec) if Path(spec).is_absolute() else REPO / spec
            if "shared" in Path(spec).parts and not target.exists():
                pytest.skip(f"shared data absent: {target}")
            assert target.exists(), f"{_id(path)}: data.{key} {spec} does not exist"
    # Callbacks build, and checkpoints watch a metric that this head logs.
    for callback in trainer.callbacks or []:
        module_name, _, cls_name = callback.class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), cls_name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            init_args = getattr(callback, "init_args", None)
            instance = cls(**(init_args.as_dict() if init_args else {}))
        monitor = getattr(instance, "monitor", None)
        if cls_name == "ModelCheckpoint" and monitor:
            logged = {"val/loss", "train/loss"} if model.head == "causal" else VAL_METRICS | {"train/loss"}
            if data.sources:  # pairs among the sources: their accuracy is logged too
                logged |= {"val/pair_accuracy"}
            assert monitor in logged, f"{_id(path)}: ModelCheckpoint monitors {monitor!r}, never logged by a {model.head} head"


@pytest.mark.skipif(not TRAIN.exists(), reason="no train.yaml")
def test_train_yaml_strategy_is_deepspeed_stage_2(parser):
    pytest.importorskip("deepspeed")
    cfg = parse(parser, [TRAIN])
    strategy = cfg.trainer.strategy
    assert strategy.class_path.endswith("DeepSpeedStrategy")
    module_name, _, cls_name = strategy.class_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), cls_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instance = cls(**strategy.init_args.as_dict())  # built, not launched: no GPU needed
    assert instance.config["zero_optimization"]["stage"] == 2
    assert instance.zero_stage_3 is False
    # The paper's recipe around it.
    assert cfg.trainer.precision == "bf16-mixed"
    assert cfg.model.lora["r"] == 128 and cfg.model.head == "regression" and cfg.model.loss == "mse"
    assert cfg.data.val_fraction == 0.05 and cfg.data.rubric_dropout == 0.5 and cfg.data.reference_dropout == 0.5
    assert cfg.data.length_percentile == 99.0
