"""``phudge export``: a judge folder to share, and loading it back.

The folder holds ``judge.json`` (the module's hyper-parameters and prompt settings),
``trained.safetensors`` (the weights training changed: LoRA and head, or all when fully
fine-tuned), the tokenizer, and, for LoRA, a peft ``adapter/`` folder that peft and other
tools can read on their own. The frozen backbone is not copied: it is loaded by its name.
"""

from __future__ import annotations

from pathlib import Path

from phudge_lightning.io import atomic_path, atomic_write_json

CONFIG = "judge.json"
WEIGHTS = "trained.safetensors"


def export(module, output: str | Path, adapter: bool = True) -> Path:
    """Write ``module`` to ``output``; ``adapter=False`` leaves out the peft ``adapter/`` copy of the
    LoRA weights (an ensemble's members: see ``export/ensemble.py``). The module's ``lora_scale``
    (the factor its LoRA updates were scaled by: ``phudge export --lora-scale``, or an export read
    back) is recorded in ``judge.json`` when it is not 1, so the folder says it is not the judge as
    trained, and a re-export says so too."""
    from safetensors.torch import save_file

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.trained_state_dict().items()}
    with atomic_path(output / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    module.tokenizer.save_pretrained(output / "tokenizer")
    if adapter and hasattr(module.backbone, "peft_config"):
        module.backbone.save_pretrained(output / "adapter")
    lora_scale = getattr(module, "lora_scale", 1.0)
    provenance = {"lora_scale": lora_scale} if lora_scale != 1.0 else {}
    atomic_write_json(output / CONFIG, {"hparams": dict(module.hparams), "prompt": module.prompt_settings, **provenance})
    return output


def load_export(folder: str | Path, map_location: str = "cpu"):
    """The ``JudgeModule`` of an exported folder (``phudge_lightning.checkpoints`` reads it)."""
    from phudge_lightning.checkpoints import CheckpointError, kind_of, load_module

    if kind_of(folder).name != "export":
        raise CheckpointError(f"{folder} is not an exported judge: no {CONFIG}")  # (kind_of says why)
    return load_module(folder, map_location)
