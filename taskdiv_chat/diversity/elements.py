"""Key elements of an answer (genre, setting, point of view, tone, structure for
creative writing; approach, tool, cost for designs; recommendation and viewpoint
for advice), found with small word lists.

Anchored regeneration lists the elements earlier answers already used so the
model can pick new ones; the local judge compares them between two answers.
"""

from __future__ import annotations

import re
from collections import Counter

from .text import content_words, fold, names, sentences, stem, words

# label -> stems that signal it. Word lists are deliberately short and concrete.
GENRES = {
    "science fiction": "spaceship starship planet robot alien galaxy android laser orbit astronaut space colony "
                       "martian cyborg hologram future futuristic teleport",
    "fantasy": "dragon wizard witch magic spell elf elves kingdom sorcerer enchanted fairy potion quest troll "
               "castle prophecy",
    "mystery": "detective clue murder suspect mystery mysterious vanish vanished missing investigate case alibi",
    "horror": "ghost haunted monster scream blood creature dread corpse shadow eerie terror nightmare",
    "romance": "love kiss heart romance wedding date crush sweetheart married proposal",
    "comedy": "joke laugh funny silly hilarious prank pun giggle ridiculous",
    "adventure": "journey treasure explore expedition map voyage pirate jungle",
    "fairy tale": "princess prince once upon",
    "western": "cowboy sheriff saloon outlaw ranch",
    "war": "soldier battle war trench army",
}
SETTINGS = {
    "sea": "sea ocean ship boat beach island shore wave harbor harbour lighthouse sailor coast",
    "city": "city street apartment subway skyscraper downtown traffic cafe office",
    "forest": "forest woods tree trees woodland grove",
    "space": "space planet star stars moon galaxy orbit station mars",
    "countryside": "farm village barn field meadow countryside rural cottage",
    "mountain": "mountain peak cliff summit snow alp",
    "desert": "desert sand dune oasis",
    "school": "school class classroom teacher student campus",
    "home": "kitchen house home bedroom garden attic",
    "castle": "castle palace throne tower",
}
TONES = {
    "humorous": "joke funny laugh silly hilarious giggle pun absurd",
    "sad": "tear tears cry cried grief lonely loss lost mourn sorrow sad goodbye",
    "hopeful": "hope hopeful bright smile joy warm dawn new beginning",
    "dark": "dark darkness fear dread cold shadow death",
    "romantic": "love heart kiss tender",
    "peaceful": "calm quiet peace gentle still soft",
}
COSTS = {
    "free or cheap": "free cheap inexpensive diy budget homemade low-cost simple",
    "expensive": "expensive professional hire buy purchase premium invest subscription service",
}
STANCES = {
    "yes": r"^(?:yes|yeah|yep|absolutely|definitely|certainly|of course|sure|it is worth|it's worth|worth it|"
           r"i(?:'d| would) (?:say yes|recommend)|go for it)\b",
    "no": r"^(?:no|nope|not really|not yet|probably not|not worth|i wouldn't|i would not|it(?:'s| is) not|don't|"
          r"do not|skip|avoid)\b",
    "it depends": r"^(?:it depends|that depends|depends|only if|only when|maybe|possibly|it's complicated)\b",
}


def _lexicon(table: dict[str, str]) -> dict[str, set[str]]:
    return {label: {stem(w) for w in text.split()} for label, text in table.items()}


_GENRES, _SETTINGS, _TONES, _COSTS = map(_lexicon, (GENRES, SETTINGS, TONES, COSTS))


def _top(table: dict[str, set[str]], stems: list[str], exclude: set[str], minimum: int = 1) -> list[str]:
    """Labels whose words occur in the text (not in the prompt), most frequent first."""
    counts = Counter()
    for label, vocab in table.items():
        hits = sum(1 for s in stems if s in vocab and s not in exclude)
        if hits >= minimum:
            counts[label] = hits
    return [label for label, _ in counts.most_common(2)]


def point_of_view(text: str) -> str:
    ws = words(text)
    first = sum(w in ("i", "me", "my", "mine", "we", "our", "us") for w in ws)
    second = sum(w in ("you", "your", "yours") for w in ws)
    third = sum(w in ("he", "she", "they", "his", "her", "their", "him", "them") for w in ws)
    if first >= max(2, third):
        return "first person"
    if second >= max(3, third + 1):
        return "second person"
    return "third person"


def structure(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if re.match(r"(?i)^\s*dear\b", text.strip()):
        return "letter"
    if text.count('"') + text.count("“") >= 4:
        return "dialogue"
    if len(lines) >= 3 and sum(len(line.split()) <= 10 for line in lines) >= 0.7 * len(lines):
        return "verse"
    if sum(bool(re.match(r"\s*(?:[-*•]|\d+[.)])\s", line)) for line in lines) >= 2:
        return "list"
    return "prose"


_HEDGE = re.compile(r"^(?:overall|honestly|generally|mostly|in short|short answer|in my opinion|i think|i'd say|"
                    r"frankly|personally|on balance)\b[\s,:;-]*")
_VERDICT_WORDS = {"yes": r"^(?:beneficial|helpful|positive|worthwhile|a good idea)\b",
                  "no": r"^(?:harmful|bad|negative|detrimental|overrated|a bad idea|not a good idea)\b"}


def stance(text: str) -> str | None:
    """yes / no / it depends, from how the answer opens (after "Overall", "Honestly", ...)."""
    opening = fold(" ".join(sentences(text)[:1]))
    opening = re.sub(r"^[^a-z]+", "", opening)
    opening = _HEDGE.sub("", opening)
    for label, pattern in _VERDICT_WORDS.items():
        if re.search(pattern, opening):
            return label
    for label, pattern in STANCES.items():
        if re.search(pattern, opening):
            return label
    return None


def recommendations(text: str, prompt: str = "", context: str = "") -> list[str]:
    """Named things an advice answer recommends (products, places, tools), prompt names excluded."""
    prompt_stems = {stem(w) for w in words(prompt)}
    found = []
    for name in names(text, context):
        kept = [w for w in name.split() if stem(w) not in prompt_stems]
        if kept and " ".join(kept) not in found:
            found.append(" ".join(kept))
    return found[:3]


def prompt_options(prompt: str) -> tuple[str, str] | None:
    """The two options of an "X or Y" question ("rent or buy" -> ("rent", "buy")), stemmed."""
    match = re.search(r"([A-Za-z][\w+#-]*)\s+or\s+(?:a |an |the |in the )?([A-Za-z][\w+#-]*)", prompt)
    if not match:
        return None
    return stem(fold(match.group(1))), stem(fold(match.group(2)))


def chosen_option(text: str, options: tuple[str, str]) -> str | None:
    """Which option of an "X or Y" question the answer's opening takes: the first one it names."""
    for sentence in sentences(text)[:2]:
        for word in words(sentence):
            if stem(word) in options:
                return stem(word)
    return None


def key_elements(category_letter: str | None, text: str, prompt: str = "") -> dict[str, list[str]]:
    """The category's key elements found in one answer ({} for categories without any)."""
    exclude = {stem(w) for w in words(prompt)}
    stems = content_words(text)
    if category_letter == "G":
        return {
            "genre": _top(_GENRES, stems, exclude, minimum=2) or _top(_GENRES, stems, exclude)[:1],
            "setting": _top(_SETTINGS, stems, exclude)[:1],
            "point of view": [point_of_view(text)],
            "tone": _top(_TONES, stems, exclude)[:1],
            "structure": [structure(text)],
        }
    if category_letter == "E":
        first = sentences(text)[:1]
        approach = " ".join(content_words(first[0], exclude)[:6]) if first else ""
        tools = [w for w, _ in Counter(content_words(text, exclude)).most_common(3)]
        return {
            "approach": [approach] if approach else [],
            "main tool or material": tools,
            "cost or effort level": _top(_COSTS, stems, set())[:1],
        }
    if category_letter == "H":
        view = stance(text)
        first = sentences(text)[:1]
        return {
            "recommendation": recommendations(text, prompt) or
                              ([" ".join(content_words(first[0], exclude)[:6])] if first else []),
            "viewpoint": [view] if view else [],
        }
    return {}
