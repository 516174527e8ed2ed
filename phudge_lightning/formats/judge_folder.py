"""``judge``: this project's folder, written by ``phudge export`` (``--format judge``).

It holds ``judge.json`` (the module's hyper-parameters and prompt settings, and ``lora_scale``
when the LoRA updates were scaled: read back into the module, so a re-export keeps it), ``trained.safetensors`` (the weights training changed: LoRA
and head, or all when fully fine-tuned), the tokenizer, and, for LoRA, a peft ``adapter/``
folder that peft and other tools can read on their own. The frozen backbone is not copied: it
is loaded by its name. ``judge.json`` is written last, so a folder with the weights and without
it was cut short.
"""

from __future__ import annotations

import json
from pathlib import Path

from phudge_lightning.formats.registry import CheckpointError, Format, register
from phudge_lightning.io import atomic_path, atomic_write_json

CONFIG = "judge.json"
WEIGHTS = "trained.safetensors"


@register
class JudgeFolder(Format):
    name = "judge"
    looks_like = f"a folder from phudge export ({CONFIG})"

    @classmethod
    def holds(cls, path: Path) -> bool:
        return path.is_dir() and ((path / CONFIG).is_file() or (path / WEIGHTS).is_file())

    @classmethod
    def checkpoint(cls, path: Path) -> dict:
        import lightning
        from safetensors.torch import load_file

        config = json.loads((path / CONFIG).read_text(encoding="utf-8-sig"))
        return {"state_dict": load_file(str(path / WEIGHTS), device="cpu"), "hyper_parameters": config["hparams"],
                "prompt_settings": config.get("prompt", {}), "lora_scale": config.get("lora_scale", 1.0),
                "pytorch-lightning_version": lightning.__version__}

    @classmethod
    def check(cls, path: Path) -> None:
        if not (path / CONFIG).is_file():
            raise CheckpointError(f"{path} is an export cut short ({WEIGHTS} but no {CONFIG}): export it again")
        if not (path / WEIGHTS).is_file():
            raise CheckpointError(f"{path} is an export cut short: it has {CONFIG} but no {WEIGHTS}")

    @classmethod
    def write(cls, module, path: Path, adapter: bool = True) -> Path:
        """Write ``module`` (one ``JudgeModule``) to ``path``; ``adapter=False`` leaves out the peft
        ``adapter/`` copy of the LoRA weights (an ensemble's members)."""
        from safetensors.torch import save_file

        if hasattr(module, "members"):
            raise ValueError("an ensemble is written in format 'ensemble': a judge folder holds one judge")
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in module.trained_state_dict().items()}
        with atomic_path(path / WEIGHTS) as tmp:
            save_file(state, str(tmp))
        module.tokenizer.save_pretrained(path / "tokenizer")
        if adapter and hasattr(module.backbone, "peft_config"):
            module.backbone.save_pretrained(path / "adapter")
        scale = getattr(module, "lora_scale", 1.0)  # (phudge export --lora-scale, or read back: not as trained)
        provenance = {"lora_scale": scale} if scale != 1.0 else {}
        atomic_write_json(path / CONFIG, {"hparams": dict(module.hparams), "prompt": module.prompt_settings, **provenance})
        return path
