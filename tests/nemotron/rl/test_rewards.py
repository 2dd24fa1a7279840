import pytest

from nemotron.rl.rewards import FormatReward, MathVerifier, answers_match, final_answer, last_boxed


@pytest.mark.parametrize("text,answer", [
    ("so the result is \\boxed{42}", "42"),
    ("\\boxed{1} first, then \\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),
    ("The answer is 1,234.", "1,234"),
    ("we get -7 and then 12.5", "12.5"),
    ("no digits here", None),
])
def test_final_answer_prefers_the_last_box_then_the_last_number(text, answer):
    assert final_answer(text) == answer


def test_boxed_content_keeps_nested_braces():
    assert last_boxed("x \\boxed{a{b}c} y") == "a{b}c"
    assert last_boxed("\\boxed{unclosed") is None


@pytest.mark.parametrize("predicted,expected,same", [
    ("1,000", "1000", True), ("42.0", "42", True), ("3/4", "0.75", True), ("$5", "5", True),
    ("7.", "7", True), ("41", "42", False), ("Paris", " paris. ", True), ("Rome", "Paris", False),
])
def test_answers_compare_by_value_or_normalised_text(predicted, expected, same):
    assert answers_match(predicted, expected) is same


def test_math_verifier_on_strings_and_chat_completions():
    verify = MathVerifier()
    completions = ["I think \\boxed{12}", [{"role": "assistant", "content": "It is 13"}], "dunno"]
    assert verify(["p"] * 3, completions, expected_answer=["12", "12", "12"]) == [1.0, 0.0, 0.0]
    assert verify.__name__ == "math_verify"
    with pytest.raises(KeyError, match="expected_answer"):
        verify(["p"], ["1"])


def test_format_reward_pattern_is_configurable():
    assert FormatReward()(["p", "p"], ["\\boxed{3}", "3"]) == [1.0, 0.0]
    assert FormatReward(r"^<think>.*</think>")(["p"], ["<think>hm</think> 3"]) == [1.0]


def test_rewards_instantiate_from_config():
    from hydra.utils import instantiate

    reward = instantiate({"_target_": "nemotron.rl.rewards.FormatReward", "pattern": "yes"})
    assert reward(["p"], ["yes"]) == [1.0]
