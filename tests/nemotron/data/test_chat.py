"""Conversations -> tokens and loss mask: exactly the assistant turns, or a counted rejection."""

import json

import pytest

from nemotron.data.chat import ConversationError, assistant_spans, load_template, to_messages, tokenize_conversation
from nemotron.data.tokenizer import load_tokenizer
from nemotron.recipes import ASSETS_DIR

TOKENIZER_DIR = ASSETS_DIR / "tokenizers" / "tiny-bpe"
CHATML = load_template("chatml", TOKENIZER_DIR)
TOKENIZER = load_tokenizer(str(TOKENIZER_DIR)).tokenizer

MULTI_TURN = {"messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!", "reasoning_content": "greet back"},
    {"role": "user", "content": [{"type": "text", "text": "Add "}, {"type": "text", "text": "2 and 2"}]},
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": "{}"}}]},
    {"role": "tool", "content": "4"},
    {"role": "assistant", "content": "It is 4."},
]}


def learned_text(record, template=CHATML):
    messages, tools = to_messages(record)
    seq = tokenize_conversation(messages, tools, template, TOKENIZER)
    ids = seq.input_ids.tolist()
    runs, current = [], []
    for token, bit in zip(ids, seq.loss_mask.tolist()):
        if bit:
            current.append(token)
        elif current:
            runs.append(TOKENIZER.decode(current, skip_special_tokens=False))
            current = []
    if current:
        runs.append(TOKENIZER.decode(current, skip_special_tokens=False))
    return runs, TOKENIZER.decode(ids, skip_special_tokens=False)


def test_mask_covers_exactly_each_assistant_turn_and_its_end_of_turn_token():
    runs, full = learned_text(MULTI_TURN)
    assert runs == [
        "<think>\ngreet back\n</think>\nHello!<|im_end|>",
        '<tool_call>\n{"name": "add", "arguments": "{}"}\n</tool_call><|im_end|>',
        "It is 4.<|im_end|>",
    ]
    assert "<|im_start|>user\nAdd 2 and 2<|im_end|>" in full and full.startswith("<|im_start|>system\nBe brief.")


def test_instruction_records_become_a_user_and_an_assistant_turn():
    assert to_messages({"input": "2+2?", "output": "4"})[0] == [
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    messages, _ = to_messages({"instruction": "Answer.", "input": "2+2?", "response": "4"})
    assert messages[0]["content"] == "Answer.\n\n2+2?"
    assert learned_text({"input": "2+2?", "output": "4"})[0] == ["4<|im_end|>"]


def test_tools_are_rendered_into_the_system_prompt_and_never_learned():
    record = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
              "tools": [{"type": "function", "function": {"name": "lookup"}}]}
    runs, full = learned_text(record)
    assert runs == ["y<|im_end|>"] and '"name": "lookup"' in full


@pytest.mark.parametrize("record,reason", [
    ({"messages": [{"role": "user", "content": "hi"}]}, "no_assistant"),
    ({"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}, "unknown_role"),
    ({"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "x"}]}, "bad_content"),
    ({"messages": [{"role": "user", "content": [{"type": "image"}]}, {"role": "assistant", "content": "x"}]}, "bad_content"),
    ({"messages": []}, "bad_record"),
    ({"text": "no conversation"}, "bad_record"),
    (["not", "an", "object"], "bad_record"),
])
def test_bad_conversations_are_named(record, reason):
    with pytest.raises(ConversationError) as err:
        to_messages(record)
    assert err.value.reason == reason


def test_a_template_that_rewrites_earlier_turns_is_rejected_not_mis_masked(tmp_path):
    # Shows reasoning only on the last assistant turn: rendering grows non-monotonically.
    path = tmp_path / "last-reasoning.jinja"
    path.write_text(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['role'] == 'assistant' and loop.last and m.get('reasoning_content') %}<think>{{ m['reasoning_content'] }}</think>{% endif %}"
        "{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    template = load_template(str(path), TOKENIZER_DIR)
    record = {"messages": [{"role": "user", "content": "a"},
                           {"role": "assistant", "content": "b", "reasoning_content": "r1"},
                           {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}
    with pytest.raises(ConversationError) as err:
        assistant_spans(*to_messages(record), template)
    assert err.value.reason == "template_inconsistent"


def test_a_template_that_fails_to_render(tmp_path):
    path = tmp_path / "strict.jinja"
    path.write_text("{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tools here') }}"
                    "{% endif %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(ConversationError, match="no tools here") as err:
        tokenize_conversation(*to_messages(MULTI_TURN), load_template(str(path), TOKENIZER_DIR), TOKENIZER)
    assert err.value.reason == "render_failed"


def test_template_sources():
    from_tokenizer = load_template("tokenizer", TOKENIZER_DIR)
    assert from_tokenizer.source == json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text())["chat_template"]
    assert learned_text({"input": "q", "output": "a"}, from_tokenizer)[0] == ["a<|im_end|>"]
    from nemo_runspec.errors import ConfigError

    with pytest.raises(ConfigError, match="neither 'tokenizer', a shipped template"):
        load_template("no-such-template", TOKENIZER_DIR)
