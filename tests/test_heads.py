"""The heads, their registry, and the check that a loss fits a head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import heads
from heads import HEADS, check_loss, get_head, parse_score, register_head
from heads.causal import CausalHead
from heads.classification import ClassificationHead
from heads.regression import RegressionHead
from losses import LOSSES, get_entry


def test_builtin_heads_registered():
    assert {"regression", "classification", "causal"} <= set(HEADS)
    assert get_head("regression") is RegressionHead and RegressionHead.name == "regression"
    assert get_head("classification") is ClassificationHead and get_head("causal") is CausalHead
    for cls in (RegressionHead, ClassificationHead, CausalHead):
        entry = get_entry(cls.default_loss)
        assert entry.target == cls.target  # every default loss fits its head
    assert (RegressionHead.uses_lm_head, ClassificationHead.uses_lm_head, CausalHead.uses_lm_head) == (False, False, True)


def test_unknown_head_lists_the_registry():
    with pytest.raises(KeyError) as info:
        get_head("ranking")
    assert "ranking" in str(info.value) and "'regression'" in str(info.value) and "'causal'" in str(info.value)


def test_register_head_needs_the_attributes():
    with pytest.raises(TypeError, match="default_loss"):
        @register_head("test_incomplete")
        class Incomplete(nn.Module):
            target = "scalar"
            uses_lm_head = False
    assert "test_incomplete" not in HEADS
    with pytest.raises(ValueError, match="already registered"):
        @register_head("regression")
        class Other(nn.Module):
            target, default_loss, uses_lm_head = "scalar", "mse", False


def test_register_and_get_a_new_head():
    @register_head("test_mean_head")
    class MeanHead(nn.Module):
        target, default_loss, uses_lm_head = "scalar", "mse", False

        def __init__(self, hidden_size):
            super().__init__()

        def forward(self, pooled):
            return pooled.mean(-1) + 3

    try:
        assert get_head("test_mean_head") is MeanHead
        assert get_head(f"{__name__}.test_mean_head") is MeanHead  # module path form
    finally:
        HEADS.pop("test_mean_head")


def test_regression_head_shape_and_bias_start():
    torch.manual_seed(0)
    head = RegressionHead(hidden_size=32)
    assert head.proj.bias.item() == 3.0
    out = head(torch.randn(7, 32))
    assert out.shape == (7,)
    assert (out - 3).abs().max() < 0.5  # small weights: every row starts near the middle
    assert head(torch.zeros(2, 32)).tolist() == [3.0, 3.0]
    assert torch.equal(RegressionHead.scores(out), out.float())
    assert RegressionHead.probabilities(out) is None
    # Half-precision states are cast to the head's dtype.
    assert head(torch.randn(2, 32, dtype=torch.bfloat16)).dtype == torch.float32


def test_classification_head():
    torch.manual_seed(0)
    head = ClassificationHead(hidden_size=16)
    logits = head(torch.randn(4, 16))
    assert logits.shape == (4, 5)
    assert torch.equal(head.proj.bias, torch.zeros(5))
    with pytest.raises(ValueError, match="integer score range"):
        ClassificationHead(hidden_size=16, score_range=(0, 0.5))


def test_classification_expected_score_and_probabilities():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0], [15.0, 0.0, 0.0, 0.0, 0.0], [0.1, 0.2, 2.0, 1.9, 0.3],
                           [0.0, 0.0, 0.0, 0.0, 40.0]])
    p = torch.softmax(logits, -1)
    expected = (p * torch.arange(1, 6)).sum(-1)
    head = ClassificationHead(hidden_size=4)
    scores = head.scores(logits)
    assert torch.allclose(scores, expected)
    assert scores[0].item() == pytest.approx(3.0)
    assert scores[1].item() == pytest.approx(1.0, abs=1e-3) and scores[3].item() == pytest.approx(5.0)
    probs = ClassificationHead.probabilities(logits)
    assert torch.allclose(probs.sum(-1), torch.ones(4)) and torch.allclose(probs, p)
    # The expected score keeps the grain that the argmax loses.
    assert 3.0 < scores[2].item() < 4.0


@pytest.mark.parametrize("text,score", [
    ("Feedback: The answer is fine. [RESULT] 4", 4.0),
    ("Feedback: meh [RESULT]4", 4.0),
    ("Feedback: ok [RESULT] (3)", 3.0),
    ("Feedback: ok [RESULT] 3.5 trailing words", 3.5),
    ("First I thought [RESULT] 2 but then [RESULT] 5", 5.0),
    ("Feedback: no marker here, score 4", None),
    ("", None),
    ("[RESULT] 7", None),
    ("[RESULT] 0", None),
    ("[RESULT] ", None),
])
def test_parse_score(text, score):
    assert parse_score(text) == score


def test_causal_scores_nan_for_missing():
    scores = CausalHead.scores(["Feedback: x [RESULT] 2", "nothing", "[RESULT] 5"])
    assert scores[0].item() == 2.0 and torch.isnan(scores[1]) and scores[2].item() == 5.0
    head = CausalHead()
    logits = torch.randn(2, 3, 11)
    assert head(logits) is logits and len(list(head.parameters())) == 0
    assert CausalHead.probabilities(logits) is None


@pytest.mark.parametrize("head,loss", [("regression", "ce"), ("regression", "emd"), ("classification", "mse"),
                                       ("causal", "emd_squared"), ("classification", "causal_lm")])
def test_check_loss_mismatch(head, loss):
    cls = get_head(head)
    with pytest.raises(ValueError) as info:
        check_loss(cls, loss, LOSSES[loss].target)
    message = str(info.value)
    assert repr(loss) in message and repr(head) in message
    assert repr(LOSSES[loss].target) in message and f"target={cls.target!r}" in message


@pytest.mark.parametrize("head,loss", [("regression", "mse"), ("classification", "ce"), ("classification", "emd"),
                                       ("classification", "emd_squared_summed"), ("causal", "causal_lm")])
def test_check_loss_match(head, loss):
    check_loss(get_head(head), loss, LOSSES[loss].target)


def test_judge_module_refuses_a_mismatched_loss(tmp_path):
    from phudge_lightning.model.module import JudgeModule

    # Refused before any backbone is read: the folder does not even exist.
    with pytest.raises(ValueError, match=r"loss 'ce' expects a 'distribution' prediction but head 'regression'"):
        JudgeModule(backbone=str(tmp_path / "absent"), head="regression", loss="ce")
    with pytest.raises(KeyError, match="unknown loss"):
        JudgeModule(backbone=str(tmp_path / "absent"), head="regression", loss="nope")


def test_heads_package_exports():
    assert heads.parse_score is parse_score and heads.get_head is get_head


def test_the_data_module_asks_the_head_not_its_name():
    # A plugin head that writes with the LM head must get its completion, whatever its name.
    from phudge_lightning.cli import head_uses_lm_head

    @register_head("test_plugin_writer")
    class PluginWriter(CausalHead):
        pass

    assert head_uses_lm_head("test_plugin_writer") is True
    assert head_uses_lm_head("causal") is True
    assert head_uses_lm_head("regression") is False and head_uses_lm_head("classification") is False
    # Optional attributes get their defaults at registration.
    assert PluginWriter.label_key == "labels" and PluginWriter.generates is True
    assert get_head("regression").label_key == "score" and get_head("regression").generates is False
