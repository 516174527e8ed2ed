"""Rendering records into prompts, and encoding them within a token budget."""

from __future__ import annotations

import pytest

from datamodules.prompt import CUT_MARK, PromptEncoder, completion, render
from datamodules.records import Record, rubric_text
from tiny import WORDS, tiny_tokenizer

RUBRIC = {"criteria": "Is the explanation correct and complete?",
          **{f"score{k}_description": f"Level {k} of correctness." for k in range(1, 6)}}
HEADERS = ("###Task Description:", "###The instruction to evaluate:", "###Response to evaluate:",
           "###Context:", "###Reference Answer (Score 5):", "###Score Rubrics:", "###Feedback:")


def _words(n: int, start: int = 0) -> str:
    return " ".join(WORDS[(start + 5 * i) % len(WORDS)] for i in range(n))


def record(**over) -> Record:
    base = dict(instruction="Explain why steak should rest.", response="It keeps the juice in.",
                rubric=RUBRIC, reference_answer="Resting lets the juice settle.", score=4.0, feedback="Good but short.")
    base.update(over)
    return Record(**base)


@pytest.fixture(scope="module")
def plain():
    return tiny_tokenizer(chat=False)


@pytest.fixture(scope="module")
def chat():
    return tiny_tokenizer(chat=True)


@pytest.mark.parametrize("has_rubric", [True, False])
@pytest.mark.parametrize("has_reference", [True, False])
def test_four_variants(has_rubric, has_reference):
    rec = record(rubric=RUBRIC if has_rubric else None, reference_answer="The reference." if has_reference else None)
    text = render(rec)
    assert text.startswith("###Task Description:\n") and text.endswith("\n\n###Feedback: ")
    assert ("###Score Rubrics:" in text) == has_rubric
    assert (rubric_text(RUBRIC) in text) == has_rubric
    assert ("###Reference Answer (Score 5):" in text) == has_reference
    assert ("The reference." in text) == has_reference
    task = text.split("\n\n###The instruction")[0]
    assert ("reference answer" in task) == has_reference
    assert ("score rubric" in task) == has_rubric
    assert "###Context:" not in text and "context" not in task
    # The sections that are there come in Prometheus order.
    present = [h for h in HEADERS if h in text]
    assert present == sorted(present, key=text.index)
    assert "###The instruction to evaluate:\nExplain why steak should rest." in text
    assert "###Response to evaluate:\nIt keeps the juice in." in text


def test_context_section_when_given():
    text = render(record(context="Passage one.\n\nPassage two."))
    assert "###Context:\nPassage one.\n\nPassage two." in text
    assert "passages of context" in text.split("###The instruction")[0]
    assert text.index("###Response to evaluate:") < text.index("###Context:") < text.index("###Reference Answer")


def test_completion_text():
    assert completion(record(score=4.0, feedback="  Nice.  ")) == "Feedback: Nice. [RESULT] 4"
    assert completion(record(score=3.5, feedback=None)) == "[RESULT] 3.5"


@pytest.mark.parametrize("use_chat", [False, True])
def test_special_tokens_once(plain, chat, use_chat):
    tokenizer = chat if use_chat else plain
    encoder = PromptEncoder(tokenizer)
    assert encoder.chat == use_chat
    ids = encoder.encode(record()).input_ids
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    text = tokenizer.decode(ids)
    if use_chat:
        assert text.startswith("<s><|user|>\n###Task Description:") and text.endswith("<|assistant|>\n")
    else:
        assert text == "<s>" + render(record())
    # A chat-template tokenizer can still be asked for the bare prompt.
    assert not PromptEncoder(chat, use_chat_template=False).chat


def test_no_truncation_under_budget(plain):
    encoder = PromptEncoder(plain, max_length=4096)
    encoded = encoder.encode(record())
    assert not encoded.truncated and encoded.labels is None
    assert len(encoded.input_ids) == encoder.length(record())
    assert encoded.input_ids == PromptEncoder(plain).encode(record()).input_ids


def _long_record():
    return record(instruction="Question: " + _words(120, 1), response="Answer: " + _words(400, 2),
                  reference_answer="Reference: " + _words(250, 3), context="Passage: " + _words(150, 4))


@pytest.mark.parametrize("use_chat", [False, True])
def test_truncation_never_over_budget(plain, chat, use_chat):
    tokenizer = chat if use_chat else plain
    rec = _long_record()
    full = PromptEncoder(tokenizer).encode(rec).input_ids
    rubric = rubric_text(RUBRIC)
    boiler = len(PromptEncoder(tokenizer).encode(record(instruction="q", response="r", reference_answer="f", context="c")).input_ids)
    assert len(full) > 1500
    for n in list(range(16, 200, 23)) + list(range(200, len(full) + 50, 41)):
        encoded = PromptEncoder(tokenizer, max_length=n).encode(rec)
        assert len(encoded.input_ids) <= n, n
        assert encoded.truncated == (len(full) > n), n
        text = tokenizer.decode(encoded.input_ids)
        # The end of the prompt (where a decoder is pooled) is always kept.
        assert encoded.input_ids[-3:] == full[-3:], n
        if n >= boiler + 4 * 40:  # room for every header: only fields are cut, keeping both ends
            assert rubric in text or (rubric[:12] in text and rubric[-12:] in text), n
            assert "###Feedback:" in text and "###Score Rubrics:" in text, n
            for header in HEADERS:
                assert header in text, (n, header)
            if encoded.truncated:
                assert CUT_MARK.strip() in text, n
                # The longest field (the response) loses its middle, keeping both ends.
                assert "Answer: " + _words(3, 2) in text, n
                assert _words(400, 2).split()[-1] in text.split("###Context:")[0], n
    assert not PromptEncoder(tokenizer, max_length=len(full)).encode(rec).truncated


def test_budget_too_small_raises(plain):
    with pytest.raises(ValueError, match="no room"):
        PromptEncoder(plain, max_length=8).encode(record())


def test_causal_labels_mask_the_prompt(plain):
    encoder = PromptEncoder(plain, with_completion=True)
    rec = record(score=4.0, feedback="The steak answer is short.")
    encoded = encoder.encode(rec)
    ids, labels = encoded.input_ids, encoded.labels
    assert len(ids) == len(labels) == encoder.length(rec)
    prompt_len = len(PromptEncoder(plain).encode(rec).input_ids)
    assert labels[:prompt_len] == [-100] * prompt_len
    assert labels[prompt_len:] == ids[prompt_len:] and -100 not in labels[prompt_len:]
    assert ids[-1] == plain.eos_token_id
    target = plain.decode(labels[prompt_len:], skip_special_tokens=True)
    assert target == "Feedback: The steak answer is short. [RESULT] 4"
    assert target.endswith("[RESULT] 4")


@pytest.mark.parametrize("n", [64, 100, 180, 300])
def test_causal_truncation_keeps_the_completion(plain, n):
    rec = _long_record()
    encoded = PromptEncoder(plain, max_length=n, with_completion=True).encode(rec)
    assert len(encoded.input_ids) <= n and encoded.truncated
    kept = [t for t, l in zip(encoded.input_ids, encoded.labels) if l != -100]
    assert plain.decode(kept, skip_special_tokens=True) == "Feedback: Good but short. [RESULT] 4"
    assert encoded.labels[0] == -100


def test_a_long_rubric_is_cut_before_the_response_is_lost(plain):
    """MiniLM's case: a budget (256 tokens there) that the task description and the rubric alone fill.
    The rubric is cut like any field, so the response is still read (it used to be dropped
    by the last-resort cut of the token sequence's middle)."""
    rubric = {"criteria": "Is it right? " + _words(60, 5),
              **{f"score{k}_description": f"Level {k}: " + _words(40, k) for k in range(1, 6)}}
    rec = record(instruction="Question: " + _words(30, 1), response="Answer: " + _words(80, 2), rubric=rubric,
                 reference_answer=None)
    encoder = PromptEncoder(plain, max_length=400)
    assert encoder.length(record(instruction="q", response="r", rubric=rubric, reference_answer=None)) > 400
    encoded = encoder.encode(rec)
    text = plain.decode(encoded.input_ids)
    assert encoded.truncated and len(encoded.input_ids) <= 400
    response = text.split("###Response to evaluate:")[1].split("###Score Rubrics:")[0]
    assert response.strip().startswith("Answer: " + _words(3, 2)) and len(response.split()) >= 20
    rubric_part = text.split("###Score Rubrics:")[1]
    assert rubric_part.strip().startswith("[Is it right?") and CUT_MARK.strip() in rubric_part
    assert text.endswith("###Feedback: ")


# -- the conversation layout ----------------------------------------------------------------------
@pytest.mark.parametrize("use_chat", [False, True])
def test_conversation_layout_puts_the_answer_last(plain, chat, use_chat):
    tokenizer = chat if use_chat else plain
    encoder = PromptEncoder(tokenizer, layout="conversation")
    text = tokenizer.decode(encoder.encode(record()).input_ids)
    # No grading instructions: the instruction, the sections given, then the answer at the end.
    assert "###Task Description:" not in text and "###Feedback:" not in text
    assert text.index("Explain why steak should rest.") < text.index("###Reference Answer:") < text.index("###Score Rubrics:")
    assert text.index("###Score Rubrics:") < text.index("It keeps the juice in.")
    if use_chat:  # the assistant's turn, closed, with nothing after it (where `last` pooling reads)
        assert "<|assistant|>\nIt keeps the juice in." in text and text.endswith("It keeps the juice in.</s>")
    else:
        assert text.endswith("###Response:\nIt keeps the juice in.")
    bare = tokenizer.decode(encoder.encode(record(rubric=None, reference_answer=None)).input_ids)
    assert "###Reference Answer:" not in bare and "###Score Rubrics:" not in bare


def test_conversation_layout_cuts_the_answer_within_budget(plain):
    encoder = PromptEncoder(plain, max_length=120, layout="conversation")
    encoded = encoder.encode(_long_record())
    text = plain.decode(encoded.input_ids)
    assert encoded.truncated and len(encoded.input_ids) <= 120
    assert CUT_MARK.strip() in text and "###Response:" in text


def test_conversation_layout_is_checked():
    with pytest.raises(ValueError, match="layout must be one of prometheus, conversation"):
        PromptEncoder(tiny_tokenizer(), layout="chat")
    with pytest.raises(ValueError, match="causal head"):
        PromptEncoder(tiny_tokenizer(), layout="conversation", with_completion=True)
