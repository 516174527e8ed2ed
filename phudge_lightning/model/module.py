"""``JudgeModule``: a backbone, a registered head and a registered loss, trained with Lightning."""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import warnings

import lightning as L
import torch
from torchmetrics import MaxMetric, MeanMetric

import heads
import losses
from heads.folded import FoldedBias
from datamodules.judge_datamodule import adopt_former_state
from datamodules.prompt_settings import prompt_settings_of
from datamodules.records import DEFAULT_SCORE_RANGE, check_score_range
from datamodules.tokenizer import load_tokenizer
from phudge_lightning.model.backbone import POOLINGS, apply_lora, default_pooling, load_backbone, pooled
from phudge_lightning.model.deepspeed_states import saved_weight_names
from phudge_lightning.model.scoring import predict_scores
from phudge_lightning.metrics import score_metrics

log = logging.getLogger(__name__)

DEFAULT_LORA = {"r": 16, "alpha": 32, "dropout": 0.05}


class JudgeModule(L.LightningModule):
    def __init__(
        self,
        backbone: str = "smollm2-135m",
        head: str = "regression",
        head_params: dict | None = None,
        loss: str | None = None,
        loss_params: dict | None = None,
        lora: dict | None = DEFAULT_LORA,
        full_finetune: bool = False,
        pooling: str = "auto",
        lr: float = 2e-5,
        weight_decay: float = 0.005,
        warmup_ratio: float = 0.05,
        gradient_checkpointing: bool = False,
        dtype: str = "float32",
        max_new_tokens: int = 256,
        max_nonfinite_steps: int = 10,
        plugins: list[str] | None = None,
        score_range: tuple[float, float] = (1, 5),
        pair_loss: str = "bradley_terry",
        pair_loss_params: dict | None = None,
        length_term: bool = False,
    ):
        """
        Args:
            backbone: a hub id (``microsoft/Phi-3-mini-4k-instruct``), a local folder, or an
                embedded name (``smollm2-135m``, ``minilm-l6``).
            head: a registered head: ``regression``, ``classification`` or ``causal``.
            head_params: keyword arguments of the head (e.g. ``dropout``).
            loss: a registered loss (``mse``, ``ce``, ``emd_squared``, ``emd_squared_summed``,
                ``emd``, ``causal_lm``, or ``package.module.name``); the head's default if None.
            loss_params: keyword arguments of the loss (``p`` and ``alpha`` for ``emd``).
            lora: LoRA settings (``r``, ``alpha``, ``dropout``, ``target_modules``, defaulting per
                architecture); null freezes the backbone and trains the head alone.
            full_finetune: train every backbone weight instead of LoRA.
            pooling: ``last`` (decoders), ``first``, ``mean`` or ``pooler`` (encoders: [CLS] through
                BERT's pooler, as ``BertForSequenceClassification``), or ``auto``.
            lr: AdamW learning rate (the paper's 2e-5).
            weight_decay: AdamW weight decay (the paper's 0.005).
            warmup_ratio: share of the steps spent warming up before the cosine decay.
            gradient_checkpointing: recompute activations in backward to save memory.
            dtype: the backbone's weight dtype: ``float32`` or ``bfloat16``.
            max_new_tokens: the generation limit of a head that generates (the causal head;
                the paper's 256).
            max_nonfinite_steps: stop after this many batches in a row with a NaN/inf loss.
            plugins: modules to import first, so that heads and losses they register exist.
            score_range: ``[low, high]`` of the scores (linked to ``data.score_range``): the
                regression head predicts on it, the classification head has one class per
                integer score in it ([1, 10]: ten classes), the metrics and the Judge use it.
                The causal head writes ``[RESULT] n`` on 1..5 only.
            pair_loss: the registered ``pairwise`` loss for the pairs of a batch (``bradley_terry``,
                ``margin``, or your own), on the head's scores; absolute rows keep ``loss``.
            pair_loss_params: keyword arguments of the pairwise loss (``scale``, ``margin``).
            length_term: fit c * log(1 + characters) beside the score in the pairwise loss (as
                length-controlled AlpacaEval does), so the score need not learn length; c is
                left out when grading.
        """
        super().__init__()
        self.save_hyperparameters()
        for module in plugins or []:
            importlib.import_module(module)
        self.score_range = check_score_range(score_range)
        head_cls = heads.get_head(head)
        loss_name = loss or head_cls.default_loss
        heads.check_loss(head_cls, loss_name, losses.get_entry(loss_name).target)
        self.loss_fn = losses.get_loss(loss_name, **(loss_params or {}))
        pair_entry = losses.get_entry(pair_loss)
        if pair_entry.target != "pairwise":
            raise ValueError(f"pair_loss {pair_loss!r} is registered for {pair_entry.target!r} predictions; "
                             "pick a loss registered with target='pairwise'")
        self.pair_loss_fn = losses.get_loss(pair_loss, **(pair_loss_params or {}))
        # A length coefficient fitted beside the score and left out when grading (0 at start).
        self.length_coef = torch.nn.Parameter(torch.zeros(())) if length_term else None

        model = load_backbone(backbone, causal=head_cls.uses_lm_head, dtype=dtype)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False
        self.config = model.config
        self.backbone = apply_lora(model, lora, full_finetune)
        # from_pretrained returns eval mode and Lightning keeps each module's mode as it finds it:
        # without this, dropout (LoRA's included) would never act in training.
        self.backbone.train()
        self.pooling = default_pooling(self.config) if pooling == "auto" else pooling
        if self.pooling not in POOLINGS[1:]:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if self.pooling == "pooler" and getattr(model, "pooler", None) is None:
            raise ValueError(f"pooling 'pooler' needs a backbone with a pooler (BERT); {backbone} has none")
        # Checkpoints record the pooling "auto" resolved to, so a later default never changes them.
        self.hparams["pooling"] = self.pooling
        hidden = getattr(self.config, "hidden_size", None) or self.config.get_text_config().hidden_size
        self.head = head_cls(hidden_size=hidden, **self._range_param(head_cls), **(head_params or {}))
        self.tokenizer = load_tokenizer(backbone)

        self.val_metrics = score_metrics("val/", self.score_range)
        self.test_metrics = score_metrics("test/", self.score_range)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_pearson_best = MaxMetric()
        self.val_pair_accuracy, self.test_pair_accuracy = MeanMetric(), MeanMetric()
        self.scored_rows = {"val": 0, "test": 0}  # absolute rows seen this epoch (correlations need 2)
        self.nonfinite_in_a_row = 0
        # How the data module built prompts in training (its state, in the checkpoint), read
        # back from the checkpoint so that a judge grades alike: see ``on_load_checkpoint``.
        self.prompt_settings: dict = {}
        # The factor its LoRA updates carry against the judge as trained (WiSE-FT: ``scale_lora``);
        # read back from an export's judge.json, and written into every export of it.
        self.lora_scale = 1.0

    def _range_param(self, head_cls: type) -> dict:
        """``{"score_range": ...}`` for a head that takes it; a head that does not (the causal
        head, a plugin's) works on 1..5 only, so any other range is a configuration error."""
        if "score_range" in inspect.signature(head_cls.__init__).parameters:
            return {"score_range": self.score_range}
        if self.score_range != DEFAULT_SCORE_RANGE:
            raise ValueError(f"head {head_cls.name!r} scores on 1..5 only: score_range {list(self.score_range)} "
                             "needs the regression or classification head")
        return {}

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The head's raw prediction: (N,) scores, (N, C) logits, or (N, T, V) LM logits."""
        # One pass, no generation: a KV cache would only hold memory (GBs at batch 16 on Phi-3).
        no_cache = {"use_cache": False} if hasattr(self.config, "use_cache") else {}
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **no_cache)
        features = out.logits if self.head.uses_lm_head else pooled(out, attention_mask, self.pooling)
        if self.training and torch.is_grad_enabled():
            self._start_folded_bias(features)
        return self.head(features)

    def _start_folded_bias(self, features: torch.Tensor) -> None:
        """A folded-bias head (``heads.folded``) takes its direction from the first training batch:
        the mean pooled state over every device's batch, so that all replicas hold the same one.
        Once set (or restored from a checkpoint), it stays."""
        proj = getattr(self.head, "proj", None)
        if not isinstance(proj, FoldedBias) or proj.has_direction:
            return
        mean = features.detach().float().mean(0)
        if self._trainer is not None and self.trainer.world_size > 1:
            mean = self.all_gather(mean).mean(0)
        proj.set_direction(mean)

    def _target(self, batch: dict) -> torch.Tensor:
        target = batch[self.head.label_key]
        # A distribution head's losses read a score's class position (1..C), not the score.
        to_target = getattr(self.head, "loss_target", None)
        return to_target(target) if to_target else target

    def _loss(self, raw: torch.Tensor, batch: dict) -> torch.Tensor:
        """The head's loss on absolute rows and the pairwise loss on pairs, weighted by their counts."""
        if "pairs" not in batch:
            return self.loss_fn(raw, self._target(batch))
        scored = ~torch.isnan(batch["score"])
        pairs = batch["pairs"]
        terms = []
        if scored.any():
            terms.append((int(scored.sum()), self.loss_fn(raw[scored], batch["score"][scored])))
        if len(pairs):
            scores = self.head.scores(raw)
            if self.length_coef is not None:
                scores = scores + self.length_coef * torch.log1p(batch["chars"])
            terms.append((len(pairs), self.pair_loss_fn(scores[pairs[:, 0]], scores[pairs[:, 1]], batch["preference"])))
        return sum(n * t for n, t in terms) / sum(n for n, _ in terms)

    # -- training --------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int):
        raw = self(batch["input_ids"], batch["attention_mask"])
        # A teacher's scores of every row (model.distillation.Distil) replace the labels.
        teacher = batch.get("teacher_score")
        loss = self._loss(raw, batch) if teacher is None else self.loss_fn(raw, teacher.to(raw.dtype))
        if not torch.isfinite(loss):
            self.nonfinite_in_a_row += 1
            rows = batch["index"].tolist()
            warnings.warn(f"step {self.global_step}: non-finite loss ({loss.item()}) on rows {rows}; batch skipped")
            if self.nonfinite_in_a_row >= self.hparams.max_nonfinite_steps:
                raise RuntimeError(f"{self.nonfinite_in_a_row} batches in a row had a non-finite loss (last at step "
                                   f"{self.global_step}, rows {rows}); lower the learning rate or check the data")
            return None  # Lightning skips backward and the optimizer step
        self.nonfinite_in_a_row = 0
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["index"]))
        if self.length_coef is not None:
            self.log("train/length_coef", self.length_coef.detach(), on_step=True)
        return loss

    def _eval_step(self, batch: dict, metrics, mean_loss, pair_accuracy, stage: str) -> None:
        raw = self(batch["input_ids"], batch["attention_mask"])
        mean_loss.update(self._loss(raw, batch), weight=len(batch["index"]))
        if self.head.generates:  # a generating head is scored by generation: predict / phudge evaluate
            return
        scores = self.head.scores(raw)
        scored = ~torch.isnan(batch["score"]) if "pairs" in batch else torch.ones_like(scores, dtype=torch.bool)
        if scored.any():
            metrics.update(scores[scored], batch["score"][scored])
            self.scored_rows[stage] += int(scored.sum())
        pairs = batch.get("pairs")
        if pairs is not None and len(pairs):
            # As graded: the score alone (no length term); a pair labelled tie is left out.
            a, b, p = scores[pairs[:, 0]], scores[pairs[:, 1]], batch["preference"]
            decided = p != 0.5
            if decided.any():
                pair_accuracy.update(((a > b) == (p > 0.5))[decided].float())

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics, self.val_loss, self.val_pair_accuracy, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics, self.test_loss, self.test_pair_accuracy, "test")

    def _log_epoch(self, stage: str, metrics, mean_loss) -> dict:
        values = {f"{stage}/loss": mean_loss.compute()}
        if not self.head.generates and self.scored_rows[stage] >= 2:
            values.update(metrics.compute())
        pair_accuracy = getattr(self, f"{stage}_pair_accuracy")
        if pair_accuracy.update_count:
            values[f"{stage}/pair_accuracy"] = pair_accuracy.compute()
        pair_accuracy.reset()
        self.scored_rows[stage] = 0
        metrics.reset()
        mean_loss.reset()
        # torchmetrics has already synchronised the states across devices: no sync_dist here.
        self.log(f"{stage}/loss", values.pop(f"{stage}/loss"), prog_bar=True)
        self.log_dict(values)
        return values

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val", self.val_metrics, self.val_loss)
        pearson = values.get("val/pearson")
        if pearson is not None and torch.isfinite(pearson) and not self.trainer.sanity_checking:
            self.val_pearson_best.update(pearson)
            self.log("val/pearson_best", self.val_pearson_best.compute())

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_metrics, self.test_loss)

    # -- prediction ------------------------------------------------------------------------------
    @property
    def max_new_tokens(self) -> int:
        return self.hparams.max_new_tokens

    def predict_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """``score`` (N,) and, for the classification head, ``probabilities`` (N, C); for a head
        that generates, the generated ``text`` too, with NaN scores where no ``[RESULT]`` came
        (``model/scoring.py``)."""
        return predict_scores(self, input_ids, attention_mask)

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        return {"index": batch["index"], **self.predict_scores(batch["input_ids"], batch["attention_mask"])}

    # -- optimisation ----------------------------------------------------------------------------
    def configure_optimizers(self):
        from transformers import get_cosine_schedule_with_warmup

        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = math.ceil(self.hparams.warmup_ratio * total)
        scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints -----------------------------------------------------------------------------
    def trainable_keys(self) -> set[str]:
        return {name for name, p in self.named_parameters() if p.requires_grad}

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights that training changes: LoRA (or all, when fully fine-tuned) and the head."""
        keep = self.trainable_keys() | {f"head.{k}" for k in self.head.state_dict()}
        return {k: v for k, v in self.state_dict().items() if k in keep}

    def check_trained_weights(self, names, source) -> None:
        """Every weight training changes is among ``names`` (those ``source`` holds)."""
        missing = sorted(set(self.trained_state_dict()) - set(names))
        if missing:
            raise KeyError(f"{source} lacks {len(missing)} trained weights, e.g. {missing[:3]}: "
                           "was it made with other head or LoRA settings?")

    @property
    def strict_loading(self) -> bool:
        """Strict, except under DeepSpeed: with ``exclude_frozen_parameters`` its folders hold no
        frozen weights (``__init__`` has rebuilt them from the backbone's name) and its engine
        loads strictly unless told not to; ``on_load_checkpoint`` checks the trained ones."""
        from lightning.pytorch.strategies import DeepSpeedStrategy

        if self._strict_loading is not None:  # set by the user
            return self._strict_loading
        trainer = self._trainer
        return not (trainer is not None and isinstance(trainer.strategy, DeepSpeedStrategy))

    @strict_loading.setter
    def strict_loading(self, value: bool) -> None:
        self._strict_loading = value

    def on_fit_start(self) -> None:
        # The data module owns the prompt settings (and saves them in its checkpoint state);
        # the module keeps a copy so that a judge made from it in-process grades alike.
        settings = getattr(getattr(self.trainer, "datamodule", None), "prompt_settings", None)
        if settings and settings.get("max_length"):
            self.prompt_settings = dict(settings)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if "state_dict" in checkpoint:  # (DeepSpeed writes its own shards instead)
            keep = set(self.trained_state_dict())
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        adopt_former_state(checkpoint)
        if checkpoint.get("hyper_parameters", {}).get("pooling") == "auto" and self.pooling == "pooler":
            # Saved before "auto" was resolved into the checkpoint, when an encoder's "auto" was [CLS].
            self.pooling = self.hparams["pooling"] = "first"
        self.prompt_settings = prompt_settings_of(checkpoint) or self.prompt_settings
        self.lora_scale = float(checkpoint.get("lora_scale", 1.0))
        if "state_dict" not in checkpoint:
            # DeepSpeed's engine has loaded its own folder, non-strictly (see strict_loading):
            # check here that the trained weights were in it.
            trainer = self._trainer
            path = trainer.ckpt_path if trainer is not None else None
            if path is not None:
                names = saved_weight_names(path)
                if names is not None:
                    self.check_trained_weights(names, path)
            return
        self.check_trained_weights(checkpoint["state_dict"], "checkpoint")
        # The checkpoint holds only the trained weights; the frozen rest was rebuilt from the
        # backbone's name in __init__. Completing the dict keeps the load strict.
        checkpoint["state_dict"] = {**self.state_dict(), **checkpoint["state_dict"]}
