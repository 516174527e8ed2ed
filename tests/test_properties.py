"""Property tests (hypothesis): the prompt parser, the prompt builder and its truncation, the
losses, the record validation, and the input limits of the Judge.

Every property runs a bounded number of examples (``max_examples``) with no deadline, so the
suite stays fast and steady on a shared CPU.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import losses
from datamodules import prometheus
from datamodules.prompt import CUTTABLE, PromptEncoder, render
from datamodules.records import SCORE_KEYS, Record, RecordError, rubric_text, validate_record
from tiny import tiny_tokenizer

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
HEADERS = (prometheus.TASK, prometheus.INSTRUCTION, prometheus.RESPONSE, prometheus.REFERENCE, prometheus.RUBRIC,
           prometheus.FEEDBACK)

# -- strategies ----------------------------------------------------------------------------------
# Text rich in what breaks parsers: hashes, header-like fragments, newlines, brackets, unicode.
FRAGMENTS = st.sampled_from(["###", "### ", "#", "\n", "\n\n", " ", "[RESULT] 3", "Score 1:", "[", "]", "Feedback:",
                             "###Feedback", "###Score Rubrics", "## Response to evaluate:", "é", "日本", "🙂"])
raw_text = st.lists(st.one_of(st.text(min_size=1, max_size=12), FRAGMENTS), max_size=12).map("".join)


def is_header_line(line: str) -> bool:
    return line.rstrip(" \t") in HEADERS


def has_header_line(text: str) -> bool:
    return any(is_header_line(line) for line in text.split("\n"))


def clean(text: str) -> bool:
    """A field the parser can give back as it is: non-blank, without surrounding whitespace."""
    return bool(text.strip()) and text == text.strip()


def tidy(text: str) -> str:
    """``text`` stripped, with any whole header line made into an ordinary line."""
    return "\n".join(line + " x" if is_header_line(line) else line for line in text.strip().split("\n"))


field_text = raw_text.map(tidy).filter(bool)
one_line = st.text(st.characters(blacklist_categories=("Cs", "Zl", "Zp", "Cc")), min_size=1, max_size=20).filter(clean)
rubric_object = st.fixed_dictionaries({"criteria": one_line, **{k: one_line for k in SCORE_KEYS}})


@st.composite
def records(draw, text=field_text) -> Record:
    return Record(
        instruction=draw(text), response=draw(st.one_of(text, st.just(""))),
        rubric=draw(st.one_of(st.none(), text, rubric_object)),
        reference_answer=draw(st.one_of(st.none(), text)), context=draw(st.one_of(st.none(), text)),
    )


def parsed_fields(record: Record) -> dict:
    return {"instruction": record.instruction, "response": record.response, "context": record.context,
            "reference_answer": record.reference_answer, "rubric": record.rubric}


def same_fields(parsed: dict, record: Record) -> bool:
    # A text rubric laid out exactly like an object rubric reads back as the object: same text.
    return ({**parsed, "rubric": rubric_text(parsed["rubric"])}
            == {**parsed_fields(record), "rubric": rubric_text(record.rubric)})


# -- the prompt parser ---------------------------------------------------------------------------
@FAST
@given(st.one_of(st.text(), raw_text, st.lists(st.sampled_from(HEADERS) | raw_text, max_size=10).map("\n".join)))
def test_parse_prompt_takes_any_text(text):
    parsed = prometheus.parse_prompt(text)
    assert set(parsed) == {"instruction", "response", "context", "reference_answer", "rubric"}
    for name, value in parsed.items():
        # Sections absent or empty are None, but for the response: its header alone is the answer "".
        assert value is None or (isinstance(value, str) and value.strip()) or (name == "rubric" and isinstance(value, dict)) \
            or (name == "response" and value == "")


@FAST
@given(records())
def test_render_then_parse_gives_the_fields_back(record):
    """Any fields, ``###`` inside them included, any sections missing."""
    parsed = prometheus.parse_prompt(render(record))
    assert same_fields(parsed, record), (parsed, record)
    if isinstance(record.rubric, dict):
        assert parsed["rubric"] == record.rubric


def with_header_lines(headers):
    """Field text with some whole header lines inside it."""
    line = st.sampled_from(headers).map(lambda h: "\n" + h + "\n")
    return st.lists(st.one_of(field_text, line), min_size=1, max_size=6).map(lambda parts: "".join(parts).strip()).filter(bool)


@FAST
@given(st.data())
def test_header_lines_inside_instruction_and_response_do_not_end_them(data):
    """The documented rule: the sections after the response are found by their last header,
    so an instruction or a response may hold their header lines (and a response may hold
    any header line) as long as those sections are there."""
    record = Record(
        instruction=data.draw(with_header_lines([h for h in HEADERS if h != prometheus.RESPONSE])),
        response=data.draw(with_header_lines(HEADERS)),
        rubric=data.draw(st.one_of(field_text, rubric_object)), reference_answer=data.draw(field_text))
    parsed = prometheus.parse_prompt(render(record))
    assert same_fields(parsed, record), (parsed, record)


# -- the prompt builder and its truncation -------------------------------------------------------
TOKENIZERS = {"plain": tiny_tokenizer(), "chat": tiny_tokenizer(chat=True)}
WORDS = st.sampled_from(["the answer is", "steak", "python", "\n", "###", "é", "日本語", "🙂"])
long_text = st.lists(st.one_of(WORDS, st.text(max_size=30)), min_size=1, max_size=300).map("".join).filter(clean)
# Text whose cut never splits a character into bytes: see test_a_cut_through_multibyte_characters_keeps_the_headers.
whole_chars_text = st.lists(st.one_of(WORDS, st.text(st.characters(codec="ascii"), max_size=30)), min_size=1,
                            max_size=300).map("".join).filter(clean)


def prompt_end(encoder: PromptEncoder, record: Record) -> str:
    text = encoder.text(record)
    return text[text.rindex(prometheus.FEEDBACK):]


@SLOW
@given(st.sampled_from(sorted(TOKENIZERS)), records(long_text), st.integers(16, 600))
def test_encoding_is_never_over_the_limit_and_keeps_the_end(kind, record, max_length):
    tokenizer = TOKENIZERS[kind]
    encoder = PromptEncoder(tokenizer, max_length=max_length)
    encoded = encoder.encode(record)
    full = PromptEncoder(tokenizer).encode(record).input_ids
    assert len(encoded.input_ids) <= max_length
    assert encoded.truncated == (len(full) > max_length)
    if not encoded.truncated:
        assert encoded.input_ids == full
    end = prompt_end(encoder, record)
    if max_length >= 2 * len(tokenizer(end, add_special_tokens=False)["input_ids"]) + 4:
        assert tokenizer.decode(encoded.input_ids).endswith(end)


def skeleton_length(encoder: PromptEncoder, record: Record) -> int:
    """Tokens of the prompt with every cuttable field at a few words: what cannot be cut."""
    short = {name: "x " * 20 for name in CUTTABLE if getattr(record, name)}
    return encoder.length(Record(**{**record.to_dict(), **short}))


@SLOW
@given(st.sampled_from(sorted(TOKENIZERS)), records(whole_chars_text), st.integers(0, 300))
def test_truncation_keeps_the_headers_and_the_end(kind, record, slack):
    """With room for the fixed parts, only the fields are cut: the headers and the end of the
    prompt (where a decoder is pooled) stay whole, and the rubric too unless it was cut as the
    longest field (then its criteria line, its start, is still there)."""
    tokenizer = TOKENIZERS[kind]
    measure = PromptEncoder(tokenizer)
    max_length = skeleton_length(measure, record) + 4 * 16 + slack
    encoded = PromptEncoder(tokenizer, max_length=max_length).encode(record)
    text = tokenizer.decode(encoded.input_ids)
    assert len(encoded.input_ids) <= max_length
    if record.rubric is not None:
        rubric = rubric_text(record.rubric)
        assert rubric in text or rubric[:8] in text
        assert "###Score Rubrics:" in text
    assert text.endswith(prompt_end(measure, record))
    for header in ("###The instruction to evaluate:", "###Response to evaluate:"):
        assert header in text


def test_a_cut_through_multibyte_characters_keeps_the_headers():
    """Found by the property above with any Unicode text: two fields, one token over budget."""
    record = Record(instruction="the answer is" * 5 + "00\x80\x80\U00010000\x80\x80" + "the answer is" * 3,
                    response="the answer is" * 4 + "日本語00\x80\x80\x80\x80\U00010000" + "the answer is",
                    rubric="the answer is日本語日本語")
    tokenizer = TOKENIZERS["chat"]
    encoded = PromptEncoder(tokenizer, max_length=254).encode(record)
    text = tokenizer.decode(encoded.input_ids)
    assert len(encoded.input_ids) <= 254
    assert "###The instruction to evaluate:" in text and "###Response to evaluate:" in text


# -- the losses ----------------------------------------------------------------------------------
scores = st.lists(st.floats(1, 5), min_size=1, max_size=6)
int_scores = st.lists(st.integers(1, 5), min_size=1, max_size=6)
logit = st.floats(-20, 20)
EMD_PARAMS = st.fixed_dictionaries({"p": st.floats(0.5, 3), "alpha": st.floats(0.5, 3)})
DISTRIBUTION = ["ce", "emd_squared", "emd_squared_summed", "emd"]


def get(name: str, params: dict | None = None):
    return losses.get_loss(name, **(params or {}) if name == "emd" else {})


def as_logits(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


@FAST
@given(st.sampled_from(DISTRIBUTION), EMD_PARAMS, st.data())
def test_distribution_losses_are_non_negative(name, params, data):
    score = data.draw(scores)
    logits = as_logits(data.draw(st.lists(st.lists(logit, min_size=5, max_size=5), min_size=len(score), max_size=len(score))))
    value = get(name, params)(logits, torch.tensor(score))
    assert torch.isfinite(value) and value >= 0


@FAST
@given(st.lists(st.floats(-10, 10), min_size=1, max_size=6), st.data())
def test_mse_is_non_negative_and_zero_on_target(prediction, data):
    score = torch.tensor(data.draw(st.lists(st.floats(1, 5), min_size=len(prediction), max_size=len(prediction))))
    mse = losses.get_loss("mse")
    assert mse(torch.tensor(prediction), score) >= 0
    assert mse(score.clone(), score) == 0


def at_target(score: torch.Tensor) -> torch.Tensor:
    return losses.soft_targets(score, 5).clamp_min(1e-30).log()  # softmax gives the target back


@FAST
@given(st.sampled_from(["emd_squared", "emd_squared_summed", "emd"]), EMD_PARAMS, scores)
def test_emd_losses_are_zero_when_the_prediction_is_the_target(name, params, score):
    # (p < 1 magnifies float32 rounding of the CDFs, |1e-7|^p; alpha < p: see the next test)
    assume(name != "emd" or params["alpha"] >= params["p"] >= 1)
    score = torch.tensor(score)
    assert get(name, params)(at_target(score), score).item() == pytest.approx(0, abs=1e-5)


@settings(max_examples=20, deadline=None)
@given(EMD_PARAMS.filter(lambda params: params["alpha"] < params["p"] and params["p"] >= 1), scores)
def test_emd_with_alpha_below_p_is_near_zero_at_the_target(params, score):
    """With alpha/p < 1 the loss at the target is the float32 rounding of the softmax raised to
    alpha/p (up to about 1e-4 for alpha/p = 1/4), not exactly 0: bounded, never negative."""
    score = torch.tensor(score)
    value = get("emd", params)(at_target(score), score).item()
    assert 0 <= value < 1e-3


@FAST
@given(st.sampled_from(DISTRIBUTION), EMD_PARAMS, st.data())
def test_distribution_losses_are_least_at_the_target(name, params, data):
    score = torch.tensor(data.draw(scores))
    other = as_logits(data.draw(st.lists(st.lists(logit, min_size=5, max_size=5), min_size=len(score),
                                         max_size=len(score))))
    loss = get(name, params)
    assert loss(at_target(score), score) <= loss(other, score) + 1e-5


@FAST
@given(int_scores)
def test_ce_is_zero_on_a_certain_right_answer(score):
    logits = 100 * torch.nn.functional.one_hot(torch.tensor(score) - 1, 5).float()
    assert losses.get_loss("ce")(logits, torch.tensor(score, dtype=torch.float32)).item() == pytest.approx(0, abs=1e-6)


@FAST
@given(st.sampled_from(["mse", "emd_squared", "emd_squared_summed", "emd"]), EMD_PARAMS,
       st.integers(1, 5), st.integers(1, 5), st.integers(1, 5))
def test_ordinal_a_farther_answer_costs_more(name, params, true, near, far):
    """Predicting (with certainty) a score farther from the truth costs strictly more."""
    assume(abs(near - true) < abs(far - true))
    loss = get(name, params)
    target = torch.tensor([float(true)])

    def cost(predicted: int) -> float:
        if name == "mse":
            return loss(torch.tensor([float(predicted)]), target).item()
        return loss(100 * torch.nn.functional.one_hot(torch.tensor([predicted - 1]), 5).float(), target).item()

    assert cost(near) < cost(far)


@FAST
@given(st.integers(1, 4), st.integers(2, 6), st.integers(5, 12), st.data())
def test_causal_lm_is_non_negative_and_zero_on_the_labels(n, t, vocab, data):
    labels = torch.tensor(data.draw(st.lists(st.lists(st.integers(-1, vocab - 1), min_size=t, max_size=t),
                                             min_size=n, max_size=n)))
    labels[labels < 0] = -100
    labels[:, 1] = 0  # at least one position takes a loss
    loss = losses.get_loss("causal_lm")
    random_logits = torch.tensor(data.draw(st.lists(logit, min_size=n * t * vocab, max_size=n * t * vocab))).view(n, t, vocab)
    assert loss(random_logits, labels) >= 0
    certain = torch.zeros(n, t, vocab)
    next_token = labels[:, 1:].clamp_min(0)
    certain[:, :-1] = 100 * torch.nn.functional.one_hot(next_token, vocab).float()
    assert loss(certain, labels).item() == pytest.approx(0, abs=1e-6)


# -- the record validation -----------------------------------------------------------------------
GOOD = {"instruction": "Say hi.", "response": "Hi!", "score": 4, "rubric": "Friendly?", "reference_answer": "Hello!",
        "context": ["one", "two"], "feedback": "Nice."}
not_text = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=2),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
blank = st.sampled_from(["", " ", "\n\t", "  \n"])
# field -> bad values, and the name the error gives
BAD = {
    "instruction": st.one_of(st.none(), blank, not_text),
    "response": st.one_of(st.none(), not_text),  # a blank response is an answer: see below
    "score": st.one_of(st.none(), st.floats().filter(lambda x: not (1 <= x <= 5)), st.booleans(), st.text(max_size=5),
                       st.integers().filter(lambda x: not 1 <= x <= 5)),
    "reference_answer": not_text,
    "feedback": not_text,
    "rubric": st.one_of(st.integers(), st.floats(), st.booleans(), st.lists(st.text(max_size=3), max_size=3)),
    "context": st.one_of(st.integers(), st.booleans(), st.lists(st.one_of(st.none(), blank, st.integers()), min_size=1,
                                                                max_size=3)),
}


@FAST
@given(st.sampled_from(sorted(BAD)), st.data(), st.sampled_from(["train.jsonl", "bench.json"]), st.integers(1, 10**6))
def test_a_bad_field_is_named_in_the_error(field, data, source, row):
    value = data.draw(BAD[field])
    with pytest.raises(RecordError) as caught:
        validate_record({**GOOD, field: value}, source=source, row=row)
    error = caught.value
    assert error.field is not None and error.field.split("[")[0].split(".")[0] == field
    assert f"field '{error.field}'" in str(error) and f"row {row}" in str(error) and source in str(error)


@FAST
@given(blank)
def test_a_blank_response_is_an_answer(response):
    assert validate_record({**GOOD, "response": response}).response == response


@FAST
@given(st.dictionaries(st.sampled_from(sorted(BAD)), st.none(), min_size=2), st.data())
def test_with_several_bad_fields_the_error_names_one_of_them(fields, data):
    """Validation stops at the first bad field it finds: the error names that one."""
    raw = {**GOOD, **{name: data.draw(BAD[name]) for name in fields}}
    with pytest.raises(RecordError) as caught:
        validate_record(raw)
    named = caught.value.field.split("[")[0].split(".")[0]
    assert named in fields


@FAST
@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers(), max_size=2)))
def test_a_row_that_is_not_an_object_is_refused(raw):
    with pytest.raises(RecordError, match="must be a JSON object"):
        validate_record(raw, source="x.jsonl", row=3)


# -- input limits --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_judge(tiny_llama_dir):
    from phudge_lightning.judge import Judge
    from phudge_lightning.model.module import JudgeModule

    return Judge(JudgeModule(backbone=str(tiny_llama_dir), head="classification", lora={"r": 2, "alpha": 4, "dropout": 0.0}),
                 device="cpu")


def test_a_200k_character_response_is_cut_with_a_warning(tiny_judge):
    """Over-long text is shortened by the documented rule (the middle of the longest field,
    marked ``[...]``), not run whole: the grade comes back, marked ``truncated``."""
    response = ("The steak should rest for five minutes. " * 5000)[:200_000]
    with pytest.warns(UserWarning, match=r"1 of 1 prompts were over \d+ tokens"):
        grade = tiny_judge.grade("How long should a steak rest?", response, rubric="Is it correct?")
    assert grade.truncated and grade.to_dict()["truncated"] is True
    assert 1 <= grade.score <= 5 and math.isfinite(grade.score)
    assert tiny_judge.encoder.max_length <= tiny_judge.tokenizer.model_max_length


def test_short_texts_are_not_marked_truncated(tiny_judge):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no truncation warning
        grade = tiny_judge.grade("How long should a steak rest?", "Five minutes.")
    assert not grade.truncated and "truncated" not in grade.to_dict()


def test_grade_dict_always_carries_the_score_key():
    from phudge_lightning.judge import Grade

    assert Grade(score=None, feedback="no verdict").to_dict() == {"score": None, "feedback": "no verdict"}
    assert Grade(score=4.0).to_dict() == {"score": 4.0}
