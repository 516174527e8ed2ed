"""The prompt settings of a judge: how its prompts were built in training, so that it is read
the same way when it grades. A dict of ``max_length`` (the token budget), ``use_chat_template``
``layout`` (one of ``datamodules.prompt.LAYOUTS``), and ``reads_rubric`` / ``reads_reference``
(False when no training prompt held a rubric / a reference answer: grading then leaves them out;
absent, as in judges made before this setting, means True), made by the data module
(``JudgeDataModule.prompt_settings``), saved in its checkpoint state, and read back here."""

from __future__ import annotations


def prompt_settings_of(checkpoint: dict) -> dict:
    """The prompt settings a checkpoint holds: in the data module's state (saved by Lightning
    under the class's name, so a subclass's too), or at the top level in checkpoints of before
    this rule; empty when it holds none."""
    for value in checkpoint.values():
        if isinstance(value, dict) and isinstance(value.get("prompt_settings"), dict):
            return dict(value["prompt_settings"])
    return dict(checkpoint.get("prompt_settings") or {})
