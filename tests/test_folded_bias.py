"""The folded bias (``heads.folded``): a bias-free layer computes it exactly, and training starts
at the middle of the score range as with a plain bias."""

from __future__ import annotations

import pytest
import torch

from heads import get_head
from heads.folded import FoldedBias
from tests.tiny import tiny_tokenizer


def test_it_is_a_bias_free_linear_layer_once_folded():
    torch.manual_seed(0)
    layer = FoldedBias(8, 3, offset=2.0)
    torch.nn.init.normal_(layer.weight)
    h = torch.randn(5, 8) + 4.0
    assert torch.equal(layer(h), h @ layer.weight.T)  # no direction yet: the offset does nothing
    layer.set_direction(h.mean(0))
    assert float(layer.direction @ h.mean(0)) == pytest.approx(1.0)
    assert torch.allclose(layer(h), h @ layer.folded_weight().T, atol=1e-5)
    with torch.no_grad():  # on the mean state, u . m = 1: the offset adds b exactly, as a bias
        assert (layer(h).mean(0) - h.mean(0) @ layer.weight.T).tolist() == pytest.approx([2.0] * 3, abs=1e-5)


@pytest.mark.parametrize("head,bias", [("regression", "folded"), ("classification", "folded"), ("regression", True)])
def test_a_folded_head_has_no_separate_bias_and_checks_its_setting(head, bias):
    built = get_head(head)(hidden_size=4, bias=bias)
    assert (built.proj.bias is None) == (bias == "folded")
    with pytest.raises(ValueError, match="bias must be true, false or 'folded'"):
        get_head(head)(hidden_size=4, bias="yes")


def batch(module, n=6):
    from datamodules.prompt import PromptEncoder
    from datamodules.records import Record

    encoder = PromptEncoder(module.tokenizer, max_length=96)
    ids = [encoder.encode(Record(f"Question {i}?", "An answer " * (i + 1))).input_ids for i in range(n)]
    width = max(map(len, ids))
    pad = module.tokenizer.pad_token_id
    input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
    return input_ids, mask


def test_training_starts_at_the_middle_of_the_range(tiny_llama_dir):
    from phudge_lightning.model.module import JudgeModule

    torch.manual_seed(0)
    module = JudgeModule(backbone=str(tiny_llama_dir), head="regression", head_params={"bias": "folded"},
                         lora={"r": 2, "alpha": 4, "dropout": 0.0}).train()
    input_ids, mask = batch(module)
    first = module(input_ids, mask)  # the first training forward sets the direction, then scores
    assert module.head.proj.has_direction
    # (1 + 5) / 2 plus the small w . h of the random start, as a plain bias starts
    assert first.mean().item() == pytest.approx(3.0, abs=0.25)
    # Without the offset (bias false) the start is near 0, three points below every score.
    plain = JudgeModule(backbone=str(tiny_llama_dir), head="regression", head_params={"bias": False},
                        lora={"r": 2, "alpha": 4, "dropout": 0.0}).train()
    assert abs(plain(input_ids, mask).mean().item()) < 0.5
    # Set once: a later batch does not move it.
    direction = module.head.proj.direction.clone()
    module(input_ids[:2], mask[:2])
    assert torch.equal(module.head.proj.direction, direction)
