"""The built-in losses against independent numpy computations, and the loss registry."""

from __future__ import annotations

import textwrap
import uuid

import numpy as np
import pytest
import torch

import losses
from losses import LOSSES, get_entry, get_loss, register_loss, soft_targets

C = 5


# -- an independent reference ------------------------------------------------------------------

def np_soft_targets(scores: np.ndarray) -> np.ndarray:
    t = np.zeros((len(scores), C))
    for n, s in enumerate(scores):
        pos = s - 1.0
        low = int(np.floor(pos))
        w = pos - low
        t[n, low] += 1 - w
        if w > 0:
            t[n, low + 1] += w
    return t


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_cdf_gap(logits, scores):
    return np.cumsum(np_softmax(logits), -1) - np.cumsum(np_soft_targets(scores), -1)


def np_mse(pred, scores):
    return np.mean((pred - scores) ** 2)


def np_ce(logits, scores):
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    return np.mean(-(np_soft_targets(scores) * logp).sum(-1))


def np_emd_squared(logits, scores):
    return np.mean((np_cdf_gap(logits, scores) ** 2).sum(-1))


def np_emd_squared_summed(logits, scores):
    per_class = (np_cdf_gap(logits, scores) ** 2).sum(0)
    return per_class.sum() / C


def np_emd(logits, scores, p, alpha):
    return np.mean((np.abs(np_cdf_gap(logits, scores)) ** p).sum(-1) ** (alpha / p))


def _inputs(seed: int, n: int, soft: bool):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, size=(n, C))
    scores = rng.uniform(1, 5, size=n) if soft else rng.integers(1, 6, size=n).astype(float)
    if soft:  # the ends of the scale too
        scores[0], scores[-1] = 1.0, 5.0
    return logits, scores


def _t(x):
    return torch.tensor(x, dtype=torch.float64)


CASES = [(seed, n, soft) for seed, n in ((0, 1), (1, 7), (2, 64)) for soft in (False, True)]


@pytest.mark.parametrize("seed,n,soft", CASES)
def test_mse(seed, n, soft):
    rng = np.random.default_rng(seed)
    pred, scores = rng.uniform(0, 6, n), _inputs(seed, n, soft)[1]
    assert get_loss("mse")(_t(pred), _t(scores)).item() == pytest.approx(np_mse(pred, scores), rel=1e-5)


@pytest.mark.parametrize("seed,n,soft", CASES)
@pytest.mark.parametrize("name,reference", [("ce", np_ce), ("emd_squared", np_emd_squared),
                                            ("emd_squared_summed", np_emd_squared_summed)])
def test_distribution_losses(seed, n, soft, name, reference):
    logits, scores = _inputs(seed, n, soft)
    value = get_loss(name)(_t(logits), _t(scores))
    assert value.ndim == 0
    assert value.item() == pytest.approx(reference(logits, scores), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("seed,n,soft", CASES)
@pytest.mark.parametrize("p,alpha", [(1, 1), (2, 2), (2, 1), (1, 2), (3, 1.5), (1.5, 3), (0.5, 0.5)])
def test_emd_generalised(seed, n, soft, p, alpha):
    logits, scores = _inputs(seed, n, soft)
    value = get_loss("emd", p=p, alpha=alpha)(_t(logits), _t(scores)).item()
    assert value == pytest.approx(np_emd(logits, scores, p, alpha), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("seed,n,soft", CASES)
def test_emd_2_2_is_emd_squared(seed, n, soft):
    logits, scores = map(_t, _inputs(seed, n, soft))
    assert torch.allclose(get_loss("emd", p=2, alpha=2)(logits, scores), get_loss("emd_squared")(logits, scores))
    assert torch.allclose(get_loss("emd")(logits, scores), get_loss("emd_squared")(logits, scores))
    # The summed variant is N / C times the mean one.
    assert torch.allclose(get_loss("emd_squared_summed")(logits, scores), get_loss("emd_squared")(logits, scores) * n / C)


def test_emd_rejects_bad_params():
    with pytest.raises(ValueError, match="positive"):
        get_loss("emd", p=0, alpha=2)
    with pytest.raises(ValueError, match="positive"):
        get_loss("emd", p=2, alpha=-1)


def _peaked(at_score: int, height: float = 6.0, n: int = 1) -> torch.Tensor:
    logits = torch.zeros(n, C)
    logits[:, at_score - 1] = height
    return logits


ORDINAL = [("emd_squared", {}), ("emd_squared_summed", {}), ("emd", {"p": 1, "alpha": 1}), ("emd", {"p": 2, "alpha": 1}),
           ("emd", {"p": 1, "alpha": 2}), ("emd", {"p": 3, "alpha": 3})]


@pytest.mark.parametrize("name,params", ORDINAL)
def test_ordinal_property(name, params):
    loss = get_loss(name, **params)
    cost = {k: loss(_peaked(k), torch.tensor([3.0])).item() for k in range(1, 6)}
    assert cost[2] < cost[5] and cost[4] < cost[5] and cost[2] < cost[1]  # a nearer miss costs less
    assert cost[3] < min(cost[2], cost[4])
    assert cost[2] == pytest.approx(cost[4], rel=1e-4)  # symmetric about the truth
    # A soft score of 3.4: the cost grows with the distance on either side.
    soft = {k: loss(_peaked(k), torch.tensor([3.4])).item() for k in range(1, 6)}
    assert soft[3] < soft[4] < soft[5] and soft[3] < soft[2] < soft[1]


def test_cross_entropy_is_not_ordinal():
    score = torch.tensor([3.0])
    ce = get_loss("ce")
    assert ce(_peaked(2), score).item() == pytest.approx(ce(_peaked(5), score).item())


@pytest.mark.parametrize("name,params", [("mse", {}), ("ce", {}), *ORDINAL, ("emd", {"p": 0.5, "alpha": 2})])
def test_non_negative(name, params):
    loss = get_loss(name, **params)
    for seed in range(5):
        logits, scores = _inputs(seed, 16, soft=True)
        prediction = _t(logits) if name != "mse" else _t(logits[:, 0])
        assert loss(prediction, _t(scores)).item() >= 0


def test_zero_when_prediction_is_target():
    scores = torch.tensor([1.0, 2.5, 3.4, 5.0])
    assert get_loss("mse")(scores.clone(), scores).item() == 0.0
    integer = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    logits = torch.eye(C) * 60.0  # very peaked on the true score
    for name, params in ORDINAL + [("ce", {})]:
        assert get_loss(name, **params)(logits, integer).item() < 1e-6, name
    # Soft targets: logits whose softmax is the target (log of it) cost ~0 under every EMD.
    soft_logits = soft_targets(scores).clamp_min(1e-30).log()
    for name, params in ORDINAL:
        assert get_loss(name, **params)(soft_logits, scores).item() < 1e-6, (name, params)


@pytest.mark.parametrize("name,params", [("emd", {"p": 2, "alpha": 1}), ("emd", {"p": 1, "alpha": 0.5}),
                                         ("emd", {"p": 0.5, "alpha": 0.5}), ("emd", {"p": 0.5, "alpha": 2}),
                                         ("emd_squared", {}), ("ce", {})])
def test_gradients_are_finite_even_at_the_optimum(name, params):
    scores = torch.tensor([1.0, 3.0, 5.0])
    logits = (soft_targets(scores) * 80.0).requires_grad_(True)
    get_loss(name, **params)(logits, scores).backward()
    assert torch.isfinite(logits.grad).all()
    torch.manual_seed(0)
    random = torch.randn(8, C, requires_grad=True)
    get_loss(name, **params)(random, torch.linspace(1, 5, 8)).backward()
    assert torch.isfinite(random.grad).all() and random.grad.abs().sum() > 0


def test_loss_is_float32_for_half_logits():
    logits = torch.randn(4, C).to(torch.bfloat16)
    value = get_loss("emd_squared")(logits, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert value.dtype == torch.float32


# -- soft targets ------------------------------------------------------------------------------

def test_soft_targets():
    scores = torch.tensor([1.0, 3.0, 3.4, 4.75, 5.0])
    t = soft_targets(scores)
    assert torch.allclose(t, torch.tensor(np_soft_targets(scores.numpy().astype(float)), dtype=torch.float32))
    assert torch.allclose(t.sum(-1), torch.ones(5))
    assert torch.allclose(t @ torch.arange(1.0, 6.0), scores)  # the mean is the score
    assert t[2].tolist() == pytest.approx([0, 0, 0.6, 0.4, 0])


# -- the registry ------------------------------------------------------------------------------

@register_loss("test_abs_error", target="scalar")
def abs_error(prediction, score, scale: float = 1.0):
    """Mean absolute error, scaled (a test plugin)."""
    return scale * (prediction - score).abs().mean()


def test_registered_in_test_module():
    entry = get_entry("test_abs_error")
    assert entry.target == "scalar" and entry.factory is abs_error and "Mean absolute" in entry.doc
    pred, score = torch.tensor([1.0, 4.0]), torch.tensor([2.0, 2.0])
    assert get_loss("test_abs_error")(pred, score).item() == pytest.approx(1.5)
    assert get_loss("test_abs_error", scale=2.0)(pred, score).item() == pytest.approx(3.0)


def test_registered_through_module_path(tmp_path, monkeypatch):
    module = f"plugin_{uuid.uuid4().hex[:8]}"
    package = tmp_path / module
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "extra_losses.py").write_text(textwrap.dedent('''
        from losses import register_loss

        @register_loss("plugin_huber", target="scalar")
        class Huber:
            def __init__(self, delta=1.0):
                self.delta = delta

            def __call__(self, prediction, score):
                import torch
                return torch.nn.functional.huber_loss(prediction, score, delta=self.delta)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "plugin_huber" not in LOSSES
        loss = get_loss(f"{module}.extra_losses.plugin_huber", delta=0.5)
        assert type(loss).__name__ == "Huber" and loss.delta == 0.5
        assert "plugin_huber" in LOSSES and get_entry("plugin_huber").target == "scalar"
        value = loss(torch.tensor([0.0, 3.0]), torch.tensor([0.0, 0.0]))
        assert value.item() == pytest.approx((0 + 0.5 * (3 - 0.25)) / 2)
    finally:
        LOSSES.pop("plugin_huber", None)


def test_register_conflicts_and_bad_target():
    with pytest.raises(ValueError, match="already registered"):
        register_loss("mse", target="scalar")(lambda p, s: p)
    with pytest.raises(ValueError, match="target must be one of"):
        register_loss("test_bad_target", target="vector")
    # Registering the very same object again is harmless (a module imported twice).
    register_loss("test_abs_error", target="scalar")(abs_error)


def test_unknown_loss_lists_the_registry():
    with pytest.raises(KeyError) as info:
        get_loss("no_such_loss")
    message = str(info.value)
    assert "no_such_loss" in message
    for name in ("mse", "ce", "emd", "emd_squared", "emd_squared_summed", "causal_lm"):
        assert repr(name) in message


def test_builtin_targets():
    assert {n: LOSSES[n].target for n in ("mse", "ce", "emd", "emd_squared", "emd_squared_summed", "causal_lm")} == {
        "mse": "scalar", "ce": "distribution", "emd": "distribution", "emd_squared": "distribution",
        "emd_squared_summed": "distribution", "causal_lm": "tokens"}
    assert losses.get_loss is get_loss


def test_causal_lm_ignores_masked_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.tensor([[-100, -100, -100, 4, 7, 2], [-100, -100, -100, -100, 9, 1]])
    value = get_loss("causal_lm")(logits, labels).item()
    logp = logits.double().log_softmax(-1)
    terms = [-logp[n, t - 1, labels[n, t]].item() for n in range(2) for t in range(1, 6) if labels[n, t] != -100]
    assert len(terms) == 5 and value == pytest.approx(np.mean(terms), rel=1e-5)
    # Changing a masked label or a logit that predicts one changes nothing.
    labels2 = labels.clone()
    labels2[0, 1] = -100
    logits2 = logits.clone()
    logits2[0, 0] += 100  # predicts position 1, which is masked
    assert get_loss("causal_lm")(logits2, labels2).item() == pytest.approx(value, rel=1e-6)
