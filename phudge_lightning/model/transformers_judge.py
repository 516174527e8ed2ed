"""``TransformersJudge``: a judge exported as a plain transformers model (``phudge export
--format hf``), answering what every judge answers (``model/scoring.py``): ``predict_scores``,
``tokenizer``, ``prompt_settings``, ``score_range``. ``phudge_lightning.formats.hf`` reads the
folder (or hub id) and builds it."""

from __future__ import annotations

import torch
from torch import nn

from phudge_lightning.model.scoring import predict_scores


class TransformersJudge(nn.Module):
    def __init__(self, model: nn.Module, tokenizer, config: dict):
        """``model``: an ``AutoModelForSequenceClassification`` (or ``AutoModelForCausalLM`` for
        the causal head); ``config``: the folder's ``phudge.json``."""
        import heads

        super().__init__()
        self.backbone = model
        self.tokenizer = tokenizer
        head = heads.get_head(config["head"])
        # Built only for how it reads a prediction (scores, probabilities, generate_scores): its
        # own weights are never used, the exported model's classification layer holds them.
        rng = config["hparams"].get("score_range")
        self.score_range = tuple(rng) if rng else None  # Judge builds the prompt on it
        self.head = head() if head.generates else head(hidden_size=1, **({"score_range": rng} if rng else {}))
        self.max_new_tokens = config.get("max_new_tokens", 256)
        self.prompt_settings = {"max_length": config["prompt"].get("max_length"),
                                "use_chat_template": config["prompt"].get("use_chat_template", True),
                                "layout": config["prompt"].get("layout", "prometheus"),
                                **{key: config["prompt"][key] for key in ("reads_rubric", "reads_reference")
                                   if key in config["prompt"]}}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The head's raw prediction from the model's logits: (N,) for one label, (N, C) else."""
        logits = self.backbone(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        return logits[:, 0] if logits.shape[-1] == 1 else logits

    def predict_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        return predict_scores(self, input_ids, attention_mask)
