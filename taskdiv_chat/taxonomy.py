"""The eight task categories of Jain et al. and every prompt text built from them.

Every prompt the project sends (classification, regeneration, k-at-once,
judging, checklist quality) is written here once; the classifier, the
regenerator, the judge and the UI import it from here.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict


class Wants(str, Enum):
    """What homogenization the category wants across regenerated answers."""

    SAME = "same"  # one correct answer: every variant should agree
    SAME_ANSWER_NEW_STRATEGY = "same-answer-new-strategy"  # D: answer agrees, strategy varies
    DIFFERENT = "different"  # diversity is the goal


class Category(BaseModel):
    model_config = ConfigDict(frozen=True)

    letter: str
    name: str
    short: str  # label for the UI chip
    definition: str  # one line, shown to the classifier
    examples: tuple[str, ...]
    wants: Wants
    equivalence: str  # what "functionally equivalent" means, for the judge
    regen_instruction: str  # task-anchored in-context regeneration (the paper's protocol: sent alone)
    k_instruction: str  # task-anchored k-at-once system prompt; has {k}
    key_elements: tuple[str, ...] = ()  # elements tracked across variants (G, E, H): our addition
    answer_format: str = ""  # how to end an answer (D: "the final answer on its own line ..."): our addition
    color: str  # chip colour in the UI


CATEGORIES: tuple[Category, ...] = (
    Category(
        letter="A",
        name="Well-Specified Singular Objective",
        short="Fact",
        definition="Asks for one verifiable correct answer, such as a short factual question.",
        examples=("What is the capital of Australia?", "In what year did the Berlin Wall fall?"),
        wants=Wants.SAME,
        equivalence=(
            "The two responses are functionally equivalent if they give the same final answer, "
            "even when worded or explained differently."
        ),
        regen_instruction=(
            "This question has one correct answer. Answer it again: keep the same correct answer, "
            "and you may rephrase the explanation. Do not change the answer just to be different."
        ),
        k_instruction=(
            "The question has one verifiable correct answer. Write {k} responses that all give the "
            "same correct answer, each phrased differently."
        ),
        color="#4c8dd6",
    ),
    Category(
        letter="B",
        name="Underspecified Singular Objective",
        short="Pick one",
        definition="Asks for a single answer where many correct answers exist, such as naming an example.",
        examples=("Name a country in Africa.", "Give me a fruit that is red."),
        wants=Wants.DIFFERENT,
        equivalence=(
            "The two responses are functionally equivalent if they give the same answer "
            "(the same item, name or choice)."
        ),
        regen_instruction=(
            "Many correct answers exist for this request. Give a different correct answer from "
            "the ones you already gave."
        ),
        k_instruction="Many correct answers exist. Write {k} responses, each giving a different correct answer.",
        color="#3aa58a",
    ),
    Category(
        letter="C",
        name="Random Generation",
        short="Random",
        definition="Asks to pick or generate at random from a finite set: dice, cards, coins, random numbers.",
        examples=("Roll a six-sided die.", "Pick a random number between 1 and 100."),
        wants=Wants.DIFFERENT,
        equivalence="The two responses are functionally equivalent if they give the same random outcome.",
        regen_instruction=(
            "This asks for a random outcome. Draw again and give an outcome different from the "
            "ones you already gave, as a fair random draw would over several tries."
        ),
        k_instruction="Write {k} responses, each a separate fair random draw with a different outcome.",
        color="#c9a227",
    ),
    Category(
        letter="D",
        name="Problem-Solving Objective",
        short="Solve",
        definition="Asks to reason toward one verifiable answer, such as a math, logic or coding puzzle.",
        examples=("Solve 3x + 7 = 22.", "How many ways can 5 people sit in a row?"),
        wants=Wants.SAME_ANSWER_NEW_STRATEGY,
        equivalence=(
            "The two responses are functionally equivalent if they use the same solution strategy "
            "(the same method or line of reasoning), even if worded differently. Different "
            "strategies that reach the same final answer are NOT equivalent."
        ),
        regen_instruction=(
            "This problem has a single correct final answer. Solve it again with a different "
            "strategy or method from the ones you already used, and reach the same correct answer."
        ),
        k_instruction=(
            "The problem has a single correct final answer. Write {k} solutions, each using a "
            "different strategy or method, all reaching the same correct answer."
        ),
        answer_format="the final answer on its own line as 'Answer: ...'",
        color="#8e6cd1",
    ),
    Category(
        letter="E",
        name="Problem-Solving Subjective",
        short="Design",
        definition="Asks for a practical solution or design where many partly verifiable solutions exist.",
        examples=("How can I keep my plants watered while I travel?", "Design a schema for a library app."),
        wants=Wants.DIFFERENT,
        equivalence=(
            "The two responses are functionally equivalent if they propose the same solution or "
            "approach, even when described differently."
        ),
        regen_instruction=(
            "Many workable solutions exist. Propose a solution built on a different approach from "
            "the ones you already gave, not a rewording of them."
        ),
        k_instruction="Write {k} responses, each proposing a workable solution built on a different approach.",
        key_elements=("approach", "main tool or material", "cost or effort level"),
        color="#d67a3c",
    ),
    Category(
        letter="F",
        name="Encyclopedia Inquiry",
        short="Inquiry",
        definition="Asks about real-world societies, traditions, events or history, answered from credible sources.",
        examples=("Why did the Roman Empire fall?", "What is the significance of Diwali?"),
        wants=Wants.DIFFERENT,
        equivalence=(
            "The two responses are functionally equivalent if they take the same perspective and "
            "emphasize the same facts, even when worded differently."
        ),
        regen_instruction=(
            "Answer again from a different factual perspective or emphasis than before (another "
            "angle, period, group or cause), while keeping every fact accurate."
        ),
        k_instruction=(
            "Write {k} responses, each answering from a different factual perspective or emphasis; "
            "every fact must stay accurate."
        ),
        color="#5a9bb0",
    ),
    Category(
        letter="G",
        name="Creative Writing",
        short="Creative",
        definition="Asks for creative writing: stories, poems, jokes, names, lyrics.",
        examples=("Write a short story about a lighthouse keeper.", "Write a haiku about rain."),
        wants=Wants.DIFFERENT,
        equivalence=(
            "The two responses are functionally equivalent if they share the same key creative "
            "elements (plot, genre, setting, tone, point of view, theme, structure), even when the "
            "wording differs. A rewording of the same story or idea is equivalent."
        ),
        regen_instruction=(
            "Write a new piece that changes its key creative elements: a different plot, genre, "
            "setting, tone, point of view, theme or structure. Do not reword an earlier piece."
        ),
        k_instruction=(
            "Write {k} pieces, each varying the key creative elements (plot, genre, setting, tone, "
            "point of view, theme, structure) so that no two are alike."
        ),
        key_elements=("genre", "setting", "point of view", "tone", "structure"),
        color="#d1508a",
    ),
    Category(
        letter="H",
        name="Advice or Opinions",
        short="Advice",
        definition="Asks for advice, opinions, recommendations or feedback.",
        examples=("What laptop should I buy for college?", "Is it worth learning Rust?"),
        wants=Wants.DIFFERENT,
        equivalence=(
            "The two responses are functionally equivalent if they give the same viewpoint or "
            "recommendation, even when worded differently."
        ),
        regen_instruction=(
            "Give a different viewpoint or recommendation from the ones you already gave, one a "
            "thoughtful person could genuinely hold."
        ),
        k_instruction="Write {k} responses, each giving a different viewpoint or recommendation.",
        key_elements=("recommendation", "viewpoint"),
        color="#7fa83a",
    ),
)

BY_LETTER: dict[str, Category] = {c.letter: c for c in CATEGORIES}
LETTERS: tuple[str, ...] = tuple(BY_LETTER)
OTHER = "other"  # outside the taxonomy: plain regeneration, no anchoring

# Baselines, verbatim from NoveltyBench and Community Alignment.
GENERAL_REGEN_PROMPT = "Can you generate a different answer?"
GENERAL_K_PROMPT = "Generate {k} responses that represent diverse values."


def get(letter: str | None) -> Category | None:
    """The category for a letter, or None for "other"/unknown."""
    return BY_LETTER.get((letter or "").strip().upper())


def classification_prompt(text: str) -> str:
    """The paper's self-classification prompt: categories with definitions, one letter out."""
    lines = [f"{c.letter}. {c.name}: {c.definition}" for c in CATEGORIES]
    return (
        "Classify the user prompt below into exactly one of these task categories:\n"
        + "\n".join(lines)
        + "\n\nUser prompt:\n<<<\n"
        + text
        + "\n>>>\n\nAnswer with the single letter of the category (A-H) and nothing else."
    )


def judge_prompt(prompt: str, category: Category | None, response_1: str, response_2: str) -> str:
    """The paper's pairwise functional-equivalence question (answer YES or NO)."""
    rule = (
        category.equivalence
        if category
        else "The two responses are functionally equivalent if a user who has seen one would find the other redundant."
    )
    return (
        "Decide whether two responses to the same prompt are functionally equivalent: a user who "
        "has seen one would find the other redundant.\n"
        f"{rule}\n\nPrompt:\n<<<\n{prompt}\n>>>\n\nResponse 1:\n<<<\n{response_1}\n>>>\n\n"
        f"Response 2:\n<<<\n{response_2}\n>>>\n\n"
        "Are the two responses functionally equivalent? Answer YES or NO only."
    )


def checklist_prompt(prompt: str) -> str:
    """Checklist quality, step 1 (after WildBench): the model writes the criteria."""
    return (
        "Write 3 to 5 short criteria that a high-quality response to the prompt below must meet, "
        f"one per line, numbered.\n\nPrompt:\n<<<\n{prompt}\n>>>"
    )


def checklist_score_prompt(prompt: str, criteria: str, response: str) -> str:
    """Checklist quality, step 2: score one response 1-5 against the criteria."""
    return (
        f"Prompt:\n<<<\n{prompt}\n>>>\n\nCriteria:\n{criteria}\n\nResponse:\n<<<\n{response}\n>>>\n\n"
        "Score the response from 1 (poor) to 5 (excellent) against the criteria. "
        "Answer with the number only."
    )


# --- diversity engine (regeneration and k-at-once formats) -----------------------------

# Appended to both k-at-once system prompts so the reply can be split into k answers
# (part of the protocol: without it a k-at-once reply cannot be scored at all).
K_FORMAT_INSTRUCTION = (
    "Write each response under its own header line 'Response 1:', 'Response 2:' and so on up to "
    "'Response {k}:', with nothing before the first header."
)
# Our additions to the paper's prompts (on in the chat, off in `bench` unless --additions):
# the key elements earlier answers used (E, G, H) and the category's answer_format (D).
KEY_ELEMENTS_USED = "Earlier answers already used these key elements: {used}. Choose ones not used yet."
ADDITIONS = ("key elements already used (E, G, H)", "final-answer format line (D)")


def anchored_regen_prompt(category: Category, used: dict[str, list[str]] | None = None,
                          additions: bool = False) -> str:
    """The task-anchored in-context regeneration turn: the category's instruction alone (the paper's
    protocol), plus with `additions` the answer format and the key elements already used."""
    text = category.regen_instruction
    if not additions:
        return text
    if category.answer_format:
        text += f" End with {category.answer_format}."
    listed = "; ".join(f"{name}: {', '.join(values)}" for name, values in (used or {}).items() if values)
    if listed:
        text += " " + KEY_ELEMENTS_USED.format(used=listed)
    return text


def k_system_prompt(k: int, category: Category | None = None, additions: bool = False) -> str:
    """The k-at-once system prompt: the category's k_instruction (with `additions`, its answer
    format too), or the general baseline; then the format that lets the reply be split."""
    head = category.k_instruction.format(k=k) if category else GENERAL_K_PROMPT.format(k=k)
    if additions and category and category.answer_format:
        head += f" End each one with {category.answer_format}."
    return f"{head}\n{K_FORMAT_INSTRUCTION.format(k=k)}"


# --- how an in-context regeneration is laid out for a small model (diversity.strategies.LAYOUTS) ---

SINGLE_TURN_LAYOUT = "{prompt}\n\nEarlier answers:\n\n{answers}\n\n{request}"
_EXAMPLE_PROMPT = "Name a colour."


def layout_example() -> list[dict]:
    """A one-exchange demonstration of regeneration, shown before the real prompt ("example" layout)."""
    again = f"{_EXAMPLE_PROMPT}\n\n{BY_LETTER['B'].regen_instruction}"
    return [{"role": "user", "content": _EXAMPLE_PROMPT}, {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": again}, {"role": "assistant", "content": "Green."}]
