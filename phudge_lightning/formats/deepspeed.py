"""``deepspeed``: a folder from ``phudge fit`` under ``DeepSpeedStrategy`` (ZeRO 1 or 2): ``latest``
names a tag folder (or the path is that folder) holding ``mp_rank_00_model_states.pt``, a plain
torch file with the module's weights under ``module`` (bf16 under bf16-mixed: the weights the
forward used; ZeRO's fp32 master copies, in the optimizer shards, round to them) and Lightning's
state beside them. Read with torch alone: grading needs no deepspeed."""

from __future__ import annotations

from pathlib import Path

from phudge_lightning.formats.registry import CheckpointError, Format, register
from phudge_lightning.model.deepspeed_states import DEEPSPEED_STATES, deepspeed_states_file, read_states

# What DeepSpeed's engine writes into its model-states file; every other entry is Lightning's
# checkpoint (DeepSpeedStrategy hands it over as the engine's client_state).
DEEPSPEED_ENTRIES = {
    "module", "buffer_names", "optimizer", "param_shapes", "frozen_param_shapes", "shared_params",
    "frozen_param_fragments", "lr_scheduler", "data_sampler", "random_ltd", "sparse_tensor_module_names",
    "skipped_steps", "global_steps", "global_samples", "dp_world_size", "mp_world_size",
    "checkpoint_parallel_dimensions", "ds_config", "ds_version",
}


@register
class DeepSpeedFolder(Format):
    name = "deepspeed"
    looks_like = f"a DeepSpeed checkpoint folder (latest, */{DEEPSPEED_STATES})"

    @classmethod
    def holds(cls, path: Path) -> bool:
        return path.is_dir() and ((path / "latest").is_file() or any(path.glob("*model_states.pt")))

    @classmethod
    def checkpoint(cls, path: Path) -> dict:
        states_file = deepspeed_states_file(path)
        if states_file is None:
            raise CheckpointError(
                f"{path} is a DeepSpeed checkpoint without {DEEPSPEED_STATES} (ZeRO-3 partitions its weights): convert "
                "it first with lightning.pytorch.utilities.deepspeed.convert_zero_checkpoint_to_fp32_state_dict(DIR, "
                "'judge.ckpt') and use judge.ckpt")
        states = read_states(states_file)
        if states.get("mp_world_size", 1) != 1:
            raise CheckpointError(f"{states_file}: a model-parallel DeepSpeed checkpoint ({states['mp_world_size']} "
                                  "ranks) is not supported")
        if not states.get("module"):
            raise CheckpointError(f"{states_file} holds no module weights (ZeRO-3?): convert the folder with "
                                  "convert_zero_checkpoint_to_fp32_state_dict first")
        if "hyper_parameters" not in states:
            raise CheckpointError(f"{states_file} holds no hyper-parameters: was it written by phudge fit?")
        # The optimizer's parameters are what training changed (LoRA and head); with
        # exclude_frozen_parameters off the file holds the frozen backbone too, which the
        # module rebuilds from the backbone's name, so it is left out here.
        trained = {name for group in states["param_shapes"] for name in group} | set(states.get("buffer_names") or ())
        checkpoint = {k: v for k, v in states.items() if k not in DEEPSPEED_ENTRIES}
        checkpoint["state_dict"] = {k: v for k, v in states["module"].items() if k in trained}
        return checkpoint
