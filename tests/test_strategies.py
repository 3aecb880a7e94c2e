"""Message construction for every regeneration strategy, trimming, key elements, and the k-at-once splitter."""

from __future__ import annotations

import pytest

from taskdiv_chat import taxonomy
from taskdiv_chat.diversity.strategies import build_messages, split_k, used_key_elements
from taskdiv_chat.tokens import count_messages

A, D, G, H = (taxonomy.get(x) for x in "ADGH")
HISTORY = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}]


def test_temperature_is_the_plain_request_whatever_came_before():
    built = build_messages("temperature", history=HISTORY, prompt="Write a haiku about rain.",
                           earlier=["Rain taps the window", "Grey clouds weep"], category=G)
    assert built.messages == [*HISTORY, {"role": "user", "content": "Write a haiku about rain."}]
    assert built.trimmed == 0 and built.note == ""


def test_general_icr_keeps_every_earlier_answer_then_asks_verbatim():
    built = build_messages("general-icr", history=[], prompt="Name a country in Africa.",
                           earlier=["Kenya.", "Ghana."], category=taxonomy.get("B"))
    assert built.messages == [
        {"role": "user", "content": "Name a country in Africa."},
        {"role": "assistant", "content": "Kenya."},
        {"role": "user", "content": "Can you generate a different answer?"},
        {"role": "assistant", "content": "Ghana."},
        {"role": "user", "content": "Can you generate a different answer?"},
    ]
    assert taxonomy.GENERAL_REGEN_PROMPT == "Can you generate a different answer?"


def test_first_answer_of_an_icr_strategy_is_just_the_prompt():
    built = build_messages("anchored-icr", history=HISTORY, prompt="Solve 3x + 7 = 22.", earlier=[], category=D)
    assert built.messages[-1] == {"role": "user", "content": "Solve 3x + 7 = 22."}
    assert len(built.messages) == 3


def test_anchored_icr_for_a_asks_for_the_same_correct_answer():
    built = build_messages("anchored-icr", history=[], prompt="What is the capital of Australia?",
                           earlier=["Canberra."], category=A)
    last = built.messages[-1]["content"]
    assert last == A.regen_instruction  # no "Can you generate a different answer?" before "keep the same answer"
    assert "same correct answer" in last and "different answer" not in last


@pytest.mark.parametrize("letter", taxonomy.LETTERS)
def test_faithful_anchored_prompts_are_the_category_instruction_alone(letter):
    category = taxonomy.get(letter)
    earlier = ["A dragon and a wizard cast a spell in the castle.", "The detective found a clue in the city."]
    icr = build_messages("anchored-icr", history=[], prompt="Do the task.", earlier=earlier, category=category,
                         additions=False)
    assert [m["content"] for m in icr.messages if m["role"] == "user"][1:] == [category.regen_instruction] * 2
    system = build_messages("anchored-system", history=[], prompt="Do the task.", earlier=[], category=category,
                            k=5, additions=False).messages[0]["content"]
    assert system == category.k_instruction.format(k=5) + "\n" + taxonomy.K_FORMAT_INSTRUCTION.format(k=5)
    assert "Answer:" not in system and "key elements" not in icr.messages[-1]["content"]


def test_additions_add_the_answer_line_for_d_and_used_elements_for_g():
    d = build_messages("anchored-icr", history=[], prompt="Solve 3x + 7 = 22.", earlier=["x = 5"], category=D)
    assert d.messages[-1]["content"] == D.regen_instruction + " End with " + D.answer_format + "."
    assert "Answer:" in taxonomy.k_system_prompt(3, D, additions=True)
    g = build_messages("anchored-icr", history=[], prompt="Write a story.",
                       earlier=["A dragon and a wizard cast a spell."], category=G)
    assert g.messages[-1]["content"].startswith(G.regen_instruction + " Earlier answers already used")


@pytest.mark.parametrize("layout", ["turns", "restate", "system", "single", "example"])
def test_every_layout_carries_the_prompt_the_earlier_answers_and_the_request(layout):
    built = build_messages("anchored-icr", history=HISTORY, prompt="Write a haiku.", earlier=["one", "two"],
                           category=G, additions=False, layout=layout)
    text = "\n".join(m["content"] for m in built.messages)
    assert "Write a haiku." in text and "one" in text and "two" in text and G.regen_instruction in text
    assert built.messages[-1]["role"] == "user"
    if layout != "turns":  # every other layout restates the task in the turn the model answers
        assert "Write a haiku." in built.messages[-1]["content"]
    if layout == "system":
        assert built.messages[0] == {"role": "system", "content": G.regen_instruction}
    else:
        assert built.messages[:2] == HISTORY


def test_anchored_icr_for_d_asks_for_a_different_strategy_and_the_same_answer():
    built = build_messages("anchored-icr", history=[], prompt="Solve 3x + 7 = 22.",
                           earlier=["Subtract 7, divide by 3: x = 5."], category=D)
    last = built.messages[-1]["content"]
    assert "different strategy" in last and "same correct answer" in last


def test_anchored_icr_for_g_names_key_elements_already_used():
    story = ("The starship drifted past a dead planet; the robot pilot scanned the galaxy for survivors. "
             "I watched the alien lights from the bridge, my hands shaking.")
    built = build_messages("anchored-icr", history=[], prompt="Write a short story.", earlier=[story], category=G)
    last = built.messages[-1]["content"]
    assert "science fiction" in last and "first person" in last
    assert "Choose ones not used yet" in last


def test_only_the_last_regeneration_turn_lists_used_elements():
    built = build_messages("anchored-icr", history=[], prompt="Write a short story.",
                           earlier=["A dragon and a wizard cast a spell.", "A detective found a clue."], category=G)
    turns = [m["content"] for m in built.messages if m["role"] == "user"][1:]
    assert "already used" not in turns[0]
    assert "fantasy" in turns[1] and "mystery" in turns[1]


def test_used_key_elements_tracks_genre_setting_and_viewpoint():
    earlier = ["Once upon a time a dragon guarded a castle where a wizard cast a spell.",
               "The detective searched the city street for a clue to the murder."]
    used = used_key_elements(G, earlier)
    assert used["genre"][:2] == ["fantasy", "mystery"]
    assert "city" in used["setting"]
    assert used["point of view"] == ["third person"]
    assert used_key_elements(A, earlier) == {}
    assert used_key_elements(None, earlier) == {}


def test_used_key_elements_for_advice_tracks_recommendations_and_stance():
    used = used_key_elements(H, ["Yes, get a MacBook Air for the battery.", "No, buy a Lenovo ThinkPad instead."],
                             "Should I buy a laptop?")
    assert "macbook air" in used["recommendation"] and "lenovo thinkpad" in used["recommendation"]
    assert used["viewpoint"] == ["yes", "no"]


def test_general_system_uses_the_verbatim_baseline_with_k():
    built = build_messages("general-system", history=HISTORY, prompt="Name a color.", earlier=["Blue"],
                           category=G, k=4)
    system = built.messages[0]
    assert system["role"] == "system"
    assert system["content"].startswith("Generate 4 responses that represent diverse values.")
    assert "Response 4:" in system["content"]
    assert built.messages[1:] == [*HISTORY, {"role": "user", "content": "Name a color."}]


def test_anchored_system_uses_the_category_k_instruction():
    built = build_messages("anchored-system", history=[], prompt="Solve 3x + 7 = 22.", earlier=[], category=D, k=3)
    assert built.messages[0]["content"].startswith(D.k_instruction.format(k=3))


def test_anchored_strategies_without_a_category_fall_back_to_general_and_say_so():
    icr = build_messages("anchored-icr", history=[], prompt="Hello there", earlier=["Hi!"], category=None)
    assert icr.messages[-1]["content"] == taxonomy.GENERAL_REGEN_PROMPT
    assert "general" in icr.note
    system = build_messages("anchored-system", history=[], prompt="Hello", earlier=[], category=None, k=2)
    assert system.messages[0]["content"].startswith("Generate 2 responses")


def test_unknown_strategy_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="anchored-icr"):
        build_messages("brainstorm", history=[], prompt="x", earlier=[], category=None)


def test_tight_context_drops_the_oldest_earlier_answers_first_and_says_so():
    earlier = [f"Answer number {i}: " + "word " * 200 for i in range(6)]
    built = build_messages("general-icr", history=[], prompt="Tell me something.", earlier=earlier,
                           category=None, context_window=1200, reserve=200)
    assert built.trimmed > 0
    kept = [m["content"] for m in built.messages if m["role"] == "assistant"]
    assert kept == earlier[built.trimmed:]  # oldest gone, newest kept, order intact
    assert f"{built.trimmed} earlier answer" in built.note
    assert count_messages(built.messages) <= 1200 - 200


def test_no_trimming_when_everything_fits():
    built = build_messages("general-icr", history=[], prompt="Hi", earlier=["a", "b"], category=None,
                           context_window=8192)
    assert built.trimmed == 0 and built.note == ""


def test_trimmed_answers_still_count_as_used_key_elements():
    earlier = ["A dragon and a wizard: " + "magic spell " * 400, "The detective found a clue."]
    built = build_messages("anchored-icr", history=[], prompt="Write a story.", earlier=earlier, category=G,
                           context_window=600, reserve=100)
    assert built.trimmed == 1
    assert "fantasy" in built.messages[-1]["content"]


# --- split_k ------------------------------------------------------------------------------


def test_split_on_response_headers_drops_the_lead_in():
    text = ("Here are three answers:\n\nResponse 1: Kenya.\n\n**Response 2:** Ghana, in West Africa.\n\n"
            "### Response 3\nPeru is not in Africa, so: Egypt.")
    assert split_k(text, 3) == ["Kenya.", "Ghana, in West Africa.", "Peru is not in Africa, so: Egypt."]


def test_split_ignores_numbered_lists_inside_an_answer():
    text = ("Response 1:\n1. Boil water\n2. Add pasta\n\nResponse 2:\n1. Heat oil\n2. Fry eggs")
    assert split_k(text, 2) == ["1. Boil water\n2. Add pasta", "1. Heat oil\n2. Fry eggs"]


def test_split_on_a_numbered_list():
    assert split_k("1. Red\n2. Blue\n3. Green", 3) == ["Red", "Blue", "Green"]


def test_split_takes_only_k_of_a_longer_list():
    assert split_k("1. Red\n2. Blue\n3. Green\n4. Pink", 2) == ["Red", "Blue"]


def test_split_on_separator_lines():
    assert split_k("A poem\nabout rain\n---\nA poem\nabout sun\n---\nA third", 3) == [
        "A poem\nabout rain", "A poem\nabout sun", "A third"]


def test_split_on_paragraphs_merges_extra_ones_into_k():
    text = "First idea.\n\nMore on it.\n\nSecond idea.\n\nMore on that."
    parts = split_k(text, 2)
    assert len(parts) == 2
    assert "First idea." in parts[0] and "More on that." in parts[1]


def test_split_returns_fewer_when_the_reply_holds_fewer():
    assert split_k("Just one answer here.", 3) == ["Just one answer here."]
    assert split_k("", 3) == []


def test_split_with_k_one_strips_a_lone_header():
    assert split_k("Response 1: Canberra.", 1) == ["Canberra."]


def test_an_answer_that_talks_about_the_request_echoes_it():
    from taskdiv_chat.diversity.strategies import echoes_request

    request = G.regen_instruction
    assert echoes_request("I'm happy to help with a new piece. I'll change its key creative elements.", request,
                          "Write a haiku.")
    assert not echoes_request("Neon hums at midnight / rain on the empty street / a cat crosses home", request,
                              "Write a haiku.")
    # words the prompt itself uses are not an echo
    assert not echoes_request("A new piece of cake.", "Write a new piece.", "Describe a new piece of cake.")
