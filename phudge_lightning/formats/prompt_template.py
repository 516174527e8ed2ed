"""The judge's prompt as a Jinja template, so that a user of an exported folder builds it with
``jinja2`` alone (a dependency of ``transformers``), no code of ours.

It renders what the judge's layout writes (``datamodules.prometheus.render``, the authors'
``phudge_prompt.render``, or ``conversation``'s user turn), for every combination of rubric (text
or the ``{criteria, score1_description .. score5_description}`` object), reference answer and
context (text or a list of passages) being given or not; blank fields count as not given, as
``validate_record`` makes them. ``tests/test_export_hf.py`` checks they agree.

The conversation layout is a chat: for a tokenizer with a chat template, the template renders
the user's turn, and the response is the assistant's turn after it (``phudge.json``'s
``prompt.response_turn``); for one without (an encoder), it renders the whole text, the user's
turn then the response under ``###Response:``, as ``conversation.render_plain`` does.

    import jinja2
    prompt = jinja2.Template(open("prompt_template.jinja").read()).render(
        instruction="...", response="...", rubric=None, reference_answer=None, context=None)
"""

from __future__ import annotations

FILE = "prompt_template.jinja"
LAYOUTS = ("prometheus", "phudge", "conversation")

# Whitespace matters: this renders byte for byte like render(). Tags strip the newline before
# them ({%-) only where render() has no text between sections.
# The fields as render() reads them: a rubric object as its text, passages joined, blank as absent.
PREAMBLE = """\
{%- if rubric is mapping -%}
{%- set rubric = "[" ~ rubric["criteria"] ~ "]" ~ "\\nScore 1: " ~ rubric["score1_description"] ~ "\\nScore 2: " ~ rubric["score2_description"] ~ "\\nScore 3: " ~ rubric["score3_description"] ~ "\\nScore 4: " ~ rubric["score4_description"] ~ "\\nScore 5: " ~ rubric["score5_description"] -%}
{%- endif -%}
{%- if context is not none and context is not string -%}{%- set context = context | join("\\n\\n") -%}{%- endif -%}
{%- set has_context = context is string and context.strip() != "" -%}
{%- set has_reference = reference_answer is string and reference_answer.strip() != "" -%}
{%- set has_rubric = rubric is string and rubric.strip() != "" -%}
"""
TEMPLATE = PREAMBLE + """\
{%- set parts = ["an instruction (which may contain an input)", "a response to evaluate"] -%}
{%- if has_context -%}{%- set parts = parts + ["passages of context retrieved for the instruction"] -%}{%- endif -%}
{%- if has_reference -%}{%- set parts = parts + ["a reference answer that would get a score of 5"] -%}{%- endif -%}
{%- if has_rubric -%}{%- set parts = parts + ["a score rubric that states the evaluation criteria"] -%}{%- endif -%}
{%- set listed = (parts[:-1] | join(", ")) ~ " and " ~ parts[-1] -%}
###Task Description:
{{ listed[0] | upper }}{{ listed[1:] }} are given.
1. Write a detailed feedback that judges the response {{ "strictly by the score rubric" if has_rubric else "by its helpfulness, correctness and clarity" }}, not in general terms.
2. After the feedback, give a score that is an integer from 1 to 5.
3. Answer in this format: "Feedback: (the feedback) [RESULT] (an integer from 1 to 5)"
4. Write nothing else: no opening, closing or extra explanation.

###The instruction to evaluate:
{{ instruction }}

###Response to evaluate:
{{ response }}
{%- if has_context %}

###Context:
{{ context }}
{%- endif %}
{%- if has_reference %}

###Reference Answer (Score 5):
{{ reference_answer }}
{%- endif %}
{%- if has_rubric %}

###Score Rubrics:
{{ rubric }}
{%- endif %}

###Feedback: """


def _phudge_template() -> str:
    """The PHUDGE authors' prompt (``datamodules.phudge_prompt.render``) as a template: each
    section stripped as theirs is, the task text chosen by the reference answer and the rubric."""
    import json

    from datamodules.phudge_prompt import TASKS

    def task(ref: bool, rub: bool) -> str:
        return json.dumps(TASKS[(ref, rub)])  # a JSON string is a Jinja string literal

    return (PREAMBLE + """\
{%- set user = "###The instruction to evaluate:\\n" ~ instruction ~ "\\n\\n###Response to evaluate:\\n" ~ response -%}
{%- if has_context -%}{%- set user = user ~ "\\n\\n###Context:\\n" ~ context -%}{%- endif -%}
{%- set sections = [user | trim] -%}
{%- if has_reference -%}{%- set sections = sections + [("###Reference Answer (Score 5):\\n" ~ reference_answer) | trim] -%}{%- endif -%}
{%- if has_rubric -%}{%- set sections = sections + [("###Score Rubrics:\\n" ~ rubric) | trim] -%}{%- endif -%}
<|system|>
{% if has_reference and has_rubric %}""" + "{{ " + task(True, True) + " }}"
            + "{% elif has_rubric %}{{ " + task(False, True) + " }}"
            + "{% elif has_reference %}{{ " + task(True, False) + " }}"
            + "{% else %}{{ " + task(False, False) + " }}{% endif %}"
            + """<|end|>

<|user|>
{{ sections | join("\\n\\n") }}<|end|>

<|assistant|>{{ "\\n" }}""")  # (an expression: jinja drops a template's final newline)


def _conversation_template(chat: bool) -> str:
    """``conversation.user_turn`` (the instruction, then the sections given, each under its
    header), followed by the response when there is no chat template to hold it as a turn."""
    import json

    from datamodules.conversation import REFERENCE, RESPONSE
    from datamodules.prometheus import CONTEXT, RUBRIC

    def section(header: str, field: str) -> str:
        return f'{{%- set parts = parts + [{json.dumps(header + chr(10))} ~ {field}] -%}}'

    user = (PREAMBLE + "{%- set parts = [instruction] -%}\n"
            + "{%- if has_context -%}" + section(CONTEXT, "context") + "{%- endif -%}\n"
            + "{%- if has_reference -%}" + section(REFERENCE, "reference_answer") + "{%- endif -%}\n"
            + "{%- if has_rubric -%}" + section(RUBRIC, "rubric") + "{%- endif -%}\n")
    tail = "" if chat else " ~ " + json.dumps("\n\n" + RESPONSE + "\n") + " ~ response"
    return user + '{{ parts | join("\\n\\n")' + tail + " }}"


def _shown(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def template_for(score_range=(1, 5), layout: str = "prometheus", chat: bool = False) -> str:
    """The template of a judge on ``score_range``: its task text names that range, as
    ``render(record, score_range)`` does. (A rubric given as an object is written with the five
    1..5 descriptions; on another range give the rubric as text.) ``layout="phudge"``: the
    authors' prompt, whose text names 1..5 whatever the range; ``layout="conversation"``: the
    user's turn, and the response too unless ``chat`` (the judge's tokenizer has a chat template
    and holds the response as the assistant's turn)."""
    if layout == "phudge":
        return _phudge_template()
    if layout == "conversation":
        return _conversation_template(chat)
    if layout not in LAYOUTS:
        raise ValueError(f"no template for the {layout!r} layout")
    low, high = _shown(score_range[0]), _shown(score_range[1])
    return (TEMPLATE.replace("would get a score of 5", f"would get a score of {high}")
            .replace("an integer from 1 to 5", f"an integer from {low} to {high}"))


def render_template(score_range=(1, 5), layout: str = "prometheus", chat: bool = False, **fields) -> str:
    """The template rendered as a user would: ``jinja2.Template(text).render(...)``."""
    import jinja2

    fields = {k: fields.get(k) for k in ("instruction", "response", "rubric", "reference_answer", "context")}
    return jinja2.Template(template_for(score_range, layout, chat)).render(**fields)


def write(folder, prompt: dict, score_range=(1, 5)) -> None:
    """``folder/prompt_template.jinja``: the template of the layout that ``prompt`` (``phudge.json``'s
    ``prompt``) names, for a judge with or without a chat template."""
    from pathlib import Path

    (Path(folder) / FILE).write_text(template_for(score_range, prompt["layout"], chat=prompt["use_chat_template"]))


def how_to_build(prompt: dict) -> str:
    """The steps from ``prompt_template.jinja`` to the text the judge reads, for a model card;
    ``prompt``: ``phudge.json``'s ``prompt``."""
    if prompt.get("response_turn"):
        return ("render `prompt_template.jinja` with jinja2 (the user's turn), then the tokenizer's chat template on "
                "that turn and the response as the assistant's turn, with no generation prompt and trailing "
                "whitespace stripped")
    if prompt["use_chat_template"]:
        return ("render `prompt_template.jinja` with jinja2, then wrap it in the tokenizer's chat template as one user "
                "message, with the generation prompt")
    return "render `prompt_template.jinja` with jinja2: the text itself"
