"""JudgeModule: a few real training steps per head, checkpoints, non-finite losses, metrics."""

from __future__ import annotations

import math
import warnings

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import heads
from datamodules import JudgeDataModule
from phudge_lightning.metrics import score_metrics
from phudge_lightning.model.module import JudgeModule

LORA = {"r": 4, "alpha": 8, "dropout": 0.05}
HEADS = [("regression", "mse"), ("classification", "ce"), ("classification", "emd_squared"), ("causal", "causal_lm")]


def make_module(backbone, head, loss, seed=0, **kw) -> JudgeModule:
    torch.manual_seed(seed)
    kw.setdefault("lora", LORA)
    return JudgeModule(backbone=str(backbone), head=head, loss=loss, lr=1e-2, max_new_tokens=8, **kw)


def make_dm(backbone, data, head) -> JudgeDataModule:
    return JudgeDataModule(data=str(data), backbone=str(backbone), uses_lm_head=heads.get_head(head).uses_lm_head,
                                        batch_size=4, val_fraction=0.2)


def make_trainer(callbacks=(), **kw) -> L.Trainer:
    settings = dict(accelerator="cpu", devices=1, max_steps=3, limit_train_batches=3, limit_val_batches=1,
                    num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, use_distributed_sampler=False, callbacks=list(callbacks))
    settings.update(kw)
    return L.Trainer(**settings)


class ModeSpy(Callback):
    """Records the modules found in eval mode at each training batch."""

    def __init__(self):
        self.eval_modules = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.eval_modules.append([n for n, m in pl_module.named_modules() if not m.training])


def _trained_copy(module) -> dict:
    return {k: v.detach().clone() for k, v in module.trained_state_dict().items()}


@pytest.fixture(scope="module", params=HEADS, ids=lambda p: f"{p[0]}-{p[1]}")
def trained(request, tiny_llama_dir, small_records_file):
    head, loss = request.param
    module = make_module(tiny_llama_dir, head, loss)
    before = _trained_copy(module)
    dm = make_dm(tiny_llama_dir, small_records_file, head)
    spy = ModeSpy()
    trainer = make_trainer([spy])
    trainer.fit(module, dm)
    return {"head": head, "loss": loss, "module": module, "dm": dm, "trainer": trainer, "before": before, "spy": spy}


def test_fit_trains_and_logs(trained):
    trainer, module = trained["trainer"], trained["module"]
    assert trainer.global_step == 3
    metrics = {**trainer.callback_metrics, **trainer.logged_metrics}
    for key in ("train/loss", "train/loss_step", "val/loss"):
        assert key in metrics and math.isfinite(float(metrics[key])), key
    if trained["head"] == "causal":
        assert "val/pearson" not in metrics
    else:
        for key in ("val/pearson", "val/spearman", "val/mae", "val/accuracy", "val/pearson_best"):
            assert key in metrics, key
        assert -1 <= float(metrics["val/pearson"]) <= 1
    # The trained weights moved; the frozen base did not.
    after = module.trained_state_dict()
    assert any(not torch.equal(trained["before"][k], after[k]) for k in after)
    assert not any(p.requires_grad for n, p in module.backbone.named_parameters() if "lora_" not in n)
    # Every module trained in train mode (dropout on): from_pretrained's eval mode was undone.
    assert trained["spy"].eval_modules and all(not names for names in trained["spy"].eval_modules)


def test_checkpoint_holds_only_trained_weights(trained, tmp_path):
    module, trainer = trained["module"], trained["trainer"]
    path = tmp_path / "judge.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    keys = set(checkpoint["state_dict"])
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert keys == set(module.trained_state_dict()) and trainable <= keys
    assert all("lora_" in k or k.startswith("head.") for k in keys)
    assert not any("embed_tokens" in k or k.endswith("q_proj.base_layer.weight") for k in keys)
    saved = sum(v.numel() for v in checkpoint["state_dict"].values())
    assert saved < 0.5 * sum(p.numel() for p in module.parameters())
    if trained["head"] != "causal":
        assert {"head.proj.weight", "head.proj.bias"} <= keys


def test_load_from_checkpoint_predicts_the_same(trained, tmp_path):
    module, trainer, dm = trained["module"], trained["trainer"], trained["dm"]
    path = tmp_path / "judge.ckpt"
    trainer.save_checkpoint(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning lists the (frozen, left out) backbone keys
        loaded = JudgeModule.load_from_checkpoint(str(path))
    assert loaded.hparams.head == trained["head"] and loaded.hparams.loss == trained["loss"]
    for key, value in module.trained_state_dict().items():
        assert torch.equal(loaded.trained_state_dict()[key], value), key
    batch = next(iter(dm.val_dataloader()))
    module.eval()
    loaded.eval()
    ours = module.predict_scores(batch["input_ids"], batch["attention_mask"])
    theirs = loaded.predict_scores(batch["input_ids"], batch["attention_mask"])
    assert ours.keys() == theirs.keys()
    assert ours["score"].shape == (len(batch["index"]),)
    assert torch.allclose(ours["score"], theirs["score"], atol=1e-6, equal_nan=True)
    if trained["head"] == "causal":
        assert ours["text"] == theirs["text"] and len(ours["text"]) == len(batch["index"])
    else:
        assert torch.isfinite(ours["score"]).all()
        # A fresh module (other random head and LoRA) predicts otherwise: loading mattered.
        fresh = make_module(trained["module"].hparams.backbone, trained["head"], trained["loss"], seed=123).eval()
        assert not torch.allclose(fresh.predict_scores(batch["input_ids"], batch["attention_mask"])["score"],
                                  ours["score"], atol=1e-6)
    if trained["head"] == "classification":
        probabilities = ours["probabilities"]
        assert probabilities.shape == (len(batch["index"]), 5)
        assert torch.allclose(probabilities.sum(-1), torch.ones(len(batch["index"])))
        assert torch.allclose(ours["score"], probabilities @ torch.arange(1.0, 6.0), atol=1e-5)
    module.train()


def test_checkpoint_of_other_lora_settings_is_refused(trained, tmp_path, tiny_llama_dir):
    if trained["head"] != "regression":
        pytest.skip("one head is enough")
    path = tmp_path / "judge.ckpt"
    trained["trainer"].save_checkpoint(path)
    # LoRA on the embeddings too: trained weights that this checkpoint does not hold.
    other = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "embed_tokens"]}
    with pytest.raises(KeyError, match="lacks .* trained weights"):
        JudgeModule.load_from_checkpoint(str(path), lora=other)


def test_trainer_predict(trained):
    if trained["head"] == "causal":
        pytest.skip("generation is covered by predict_scores above")
    trainer, dm, module = trained["trainer"], trained["dm"], trained["module"]
    out = trainer.predict(module, dataloaders=dm.val_dataloader())
    indices = torch.cat([o["index"] for o in out])
    assert sorted(indices.tolist()) == list(range(len(dm.sets["val"])))
    assert torch.cat([o["score"] for o in out]).shape == indices.shape


# -- non-finite losses -------------------------------------------------------------------------

def _nan_loss(prediction, target):
    return prediction.float().sum() * float("nan")


def _batch(dm):
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def test_nan_batch_is_skipped_with_a_warning(tiny_llama_dir, small_records_file):
    module = make_module(tiny_llama_dir, "regression", "mse", max_nonfinite_steps=3)
    batch = _batch(make_dm(tiny_llama_dir, small_records_file, "regression"))
    real_loss, module.loss_fn = module.loss_fn, _nan_loss
    rows = batch["index"].tolist()
    for expected in (1, 2):
        with pytest.warns(UserWarning, match=r"step 0: non-finite loss \(nan\) on rows " + ", ".join(map(str, rows)).join(
                [r"\[", r"\]"])):
            assert module.training_step(batch, 0) is None
        assert module.nonfinite_in_a_row == expected
    module.loss_fn = real_loss  # a finite batch resets the count
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = module.training_step(batch, 1)
    assert torch.isfinite(loss) and module.nonfinite_in_a_row == 0
    module.loss_fn = _nan_loss
    with pytest.warns(UserWarning):
        module.training_step(batch, 2)
        module.training_step(batch, 3)
        with pytest.raises(RuntimeError, match=r"3 batches in a row had a non-finite loss .*rows \["):
            module.training_step(batch, 4)


def test_nan_batches_do_not_update_weights(tiny_llama_dir, small_records_file):
    module = make_module(tiny_llama_dir, "classification", "emd_squared", max_nonfinite_steps=100)
    before = _trained_copy(module)
    module.loss_fn = _nan_loss
    trainer = make_trainer(limit_val_batches=0)
    with pytest.warns(UserWarning, match=r"step \d+: non-finite loss"):
        trainer.fit(module, make_dm(tiny_llama_dir, small_records_file, "classification"))
    assert module.nonfinite_in_a_row == 3
    after = module.trained_state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # not even weight decay moved them


def test_one_nan_batch_then_training_goes_on(tiny_llama_dir, small_records_file):
    module = make_module(tiny_llama_dir, "regression", "mse", max_nonfinite_steps=2)
    real, calls = module.loss_fn, []

    def first_nan(prediction, target):
        calls.append(1)
        loss = real(prediction, target)
        return loss * float("nan") if len(calls) == 1 else loss

    module.loss_fn = first_nan
    trainer = make_trainer(max_steps=4, limit_train_batches=4, limit_val_batches=0)
    with pytest.warns(UserWarning, match=r"step 0: non-finite loss"):
        trainer.fit(module, make_dm(tiny_llama_dir, small_records_file, "regression"))
    assert len(calls) == 4 and module.nonfinite_in_a_row == 0
    assert math.isfinite(float(trainer.callback_metrics["train/loss_step"]))


def test_consecutive_nan_batches_stop_training(tiny_llama_dir, small_records_file):
    module = make_module(tiny_llama_dir, "regression", "mse", max_nonfinite_steps=2)
    module.loss_fn = _nan_loss
    trainer = make_trainer(limit_val_batches=0)
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="2 batches in a row had a non-finite loss"):
        trainer.fit(module, make_dm(tiny_llama_dir, small_records_file, "regression"))


# -- construction ------------------------------------------------------------------------------

def test_head_default_loss_and_frozen_backbone(tiny_llama_dir):
    module = make_module(tiny_llama_dir, "classification", None, lora=None)
    assert module.hparams.loss is None and module.loss_fn.__name__ == "emd_squared"
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable == {"head.proj.weight", "head.proj.bias"}
    assert set(module.trained_state_dict()) == trainable
    assert module.pooling == "last"


def test_emd_params_reach_the_loss(tiny_llama_dir):
    module = make_module(tiny_llama_dir, "classification", "emd", loss_params={"p": 1, "alpha": 2})
    assert (module.loss_fn.p, module.loss_fn.alpha) == (1.0, 2.0)


def test_bad_pooling_raises(tiny_llama_dir):
    with pytest.raises(ValueError, match="pooling must be one of"):
        make_module(tiny_llama_dir, "regression", "mse", pooling="max")


def test_bert_backbone_pools_through_its_pooler(tiny_bert_dir):
    module = make_module(tiny_bert_dir, "regression", "mse")
    assert module.pooling == "pooler" and module.tokenizer.padding_side == "right"
    ids = module.tokenizer(["a short one", "and a somewhat longer one"], padding=True, return_tensors="pt")
    out = module.eval().predict_scores(ids["input_ids"], ids["attention_mask"])
    assert out["score"].shape == (2,) and torch.isfinite(out["score"]).all()


# -- metrics -----------------------------------------------------------------------------------

def test_score_metrics_match_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    target = rng.integers(1, 6, size=60).astype(np.float32)
    prediction = (target + rng.normal(0, 1.0, size=60)).astype(np.float32)
    metrics = score_metrics("val/")
    for chunk in np.array_split(np.arange(60), 4):  # several updates, as batches come
        metrics.update(torch.tensor(prediction[chunk]), torch.tensor(target[chunk]))
    values = {k: float(v) for k, v in metrics.compute().items()}
    assert values["val/pearson"] == pytest.approx(stats.pearsonr(prediction, target)[0], abs=1e-4)
    assert values["val/spearman"] == pytest.approx(stats.spearmanr(prediction, target)[0], abs=1e-4)
    assert values["val/kendall"] == pytest.approx(stats.kendalltau(prediction, target)[0], abs=1e-4)
    assert values["val/mae"] == pytest.approx(np.abs(prediction - target).mean(), abs=1e-5)
    assert values["val/mse"] == pytest.approx(((prediction - target) ** 2).mean(), abs=1e-5)
    r2 = 1 - ((prediction - target) ** 2).sum() / ((target - target.mean()) ** 2).sum()
    assert values["val/r2"] == pytest.approx(r2, abs=1e-4)
    rounded = np.clip(np.round(prediction), 1, 5)
    assert values["val/accuracy"] == pytest.approx((rounded == target).mean(), abs=1e-6)
    metrics.reset()
    metrics.update(torch.tensor([1.0, 5.0]), torch.tensor([1.0, 4.0]))
    assert float(metrics.compute()["val/accuracy"]) == pytest.approx(0.5)
