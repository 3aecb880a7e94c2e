"""Follow-ups ("make it shorter", "another one", "why?") continue the task of the turn before.

A message counts as a follow-up when it is short, does not bring its own material
(no "...: <text>"), does not announce a new topic, and matches one of the patterns
below: a reference back to the last answer ("it", "that", "your answer"), a request
for more/another/again, a modifier alone ("shorter", "in French", "as a haiku") or a
challenge ("why?", "are you sure?").
"""

from __future__ import annotations

import re

from ..backends.base import Message

MAX_WORDS = 12  # longer messages state a task of their own

# Words that may open a follow-up without changing what it asks: "ok now make it shorter".
_LEAD = r"^(?:(?:now|ok|okay|and|but|please|also|just|great|nice|thanks|thank you|cool|hmm|alright|good|perfect|lol)[,.!]?\s+)*" \
        r"(?:(?:can|could|would|will) you\s+)?(?:please\s+)?"
_REF = (r"(?:it|that|this|them|those|these|the (?:answer|last one|first one|second one|previous one|above|story|poem|"
        r"list|code|text|joke|song|letter|email|recipe|plan)|your (?:answer|reply|response|story|poem|list|code|"
        r"solution|explanation|suggestion|idea|choice|reasoning))"
        # ...referring back, not opening a clause: "prove that the root of 2 ..." is a new task
        r"(?=\s*(?:[.!?,]|$)|\s+(?:in|into|to|for|with|again|more|less|please|as|so|up|down|out|a bit|a little|too|"
        r"instead|differently|better|now|shorter|longer|simpler|step|using|without|but|and)\b)")
_PARTS = r"(?:ending|end|beginning|start|title|tone|name|names|last line|first line|chorus|verse|rhyme|setting|plot|character|characters|style|format|order|wording|intro|conclusion|punchline|twist|example|examples|numbers|number)"
_MODIFIER = (r"(?:even\s+|a (?:bit|little)\s+|much\s+|way\s+|slightly\s+)?"
             r"(?:shorter|longer|simpler|funnier|sadder|darker|happier|clearer|cheaper|easier|harder|smaller|bigger|"
             r"more\s+\w+|less\s+\w+|fewer\s+\w+)")
_LANGUAGES = ("english|french|spanish|german|italian|portuguese|dutch|chinese|mandarin|japanese|korean|russian|"
              "arabic|hindi|turkish|polish|swedish|greek|latin")
_FORMS = r"(?:list|table|poem|haiku|song|tweet|story|limerick|email|summary|bullet list|rap|sonnet|joke|paragraph|dialogue)"

_FOLLOW_UP = [re.compile(_LEAD + p) for p in (
    # anaphora: an action on the last answer
    rf"(?:make|keep|write|say|put|do|redo|rewrite|translate|explain|turn|give|show|tell|read|repeat|summarize|"
    rf"shorten|expand|simplify|rephrase|reword|fix|change|edit|improve|polish|continue|finish|extend|check|prove|"
    rf"format|convert|sort|number|justify|clarify|elaborate on|cite|source)\s+(?:me\s+)?{_REF}\b",
    rf"(?:add|remove|drop|change|replace|swap|fix|adjust|tweak|keep|lose|cut)\s+(?:the|a|an|some|more|another)\s+{_PARTS}\b",
    rf"{_MODIFIER}\s*(?:please|pls|plz|than (?:that|before|this))?\s*[.!?]*$",
    rf"(?:make|keep)\s+(?:it|that|this|them)\b",
    # more of the same
    r"(?:another|one more|a different|a new|something else|more)(?:\s+\w+)?(?:\s+(?:please|pls|plz|one))?\s*[.!?]*$",
    r"(?:another|one more|a different|a new) (?:one|1|time|version|take|try|round|go)\b",
    r"(?:again|once more|try again|redo|regenerate|do it again|one more time)\b",
    r"(?:give|tell|show|write|make)\s+(?:me\s+)?(?:another|one more|a different one|something else|more)\b",
    r"(?:do\s+)?(?:the\s+)?same\s+(?:for|with|but|again|thing|please)\b",
    # a change of form or language, said alone
    rf"(?:in|into)\s+(?:{_LANGUAGES}|bullet points|bullets|a table|one sentence|\w+ words|\w+ sentences|plain english|"
    r"simpler terms|(?:more\s+)?detail|a list)\s*(?:please|pls|instead|too|as well)?\s*[.!?]*$",
    rf"as\s+(?:a|an)\s+{_FORMS}\b",
    # questions about the last answer
    r"why(?:\s+(?:not|so|is that|is it|that|this|that one|was it|would it|does it|though))?\s*[.!?]*$",
    r"why (?:did|would) you (?:say|pick|choose|think|use|write|put|call|go)\b",
    r"how (?:come|so)\b",
    r"(?:what|how) about\b",
    r"(?:and|or|but) (?:then|what|how|why|for|with|in|if|the|a|an)\b",
    r"(?:explain|elaborate|expand|clarify|justify|continue|finish|go on|keep going|tell me more|say more|more detail|"
    r"show (?:your |the )?(?:work|steps|reasoning|math))(?:\s+(?:it|that|this|please|more|further|again|on (?:it|that|this)))*"
    r"\s*[.!?]*$",
    r"(?:are you sure|really|seriously|not quite|that'?s (?:wrong|not right|incorrect|not it|too \w+)|wrong)\b",
    rf"(?:is|are|was|were)\s+(?:it|that|this|they|those|you)\s+(?:right|correct|true|accurate|sure|real|true story)\b",
    r"no[,.!]?\s+(?:i meant|i mean|that'?s|not|the other|make|try)\b",
    r"(?:what|which) (?:does|did) (?:it|that|this) mean\b|what do you mean\b",
    r"(?:for|with|without|using) (?:kids|children|beginners|a beginner|dummies|me)\s*[.!?]*$",
    r"(?:now|next)\s+(?:do|for|with|in|what|how)\b",
)]

# Announcing something new wins over any pattern: "another question: ...", "new topic".
_NEW_TASK = re.compile(r"\b(?:new|another|different|unrelated|separate|other|next)\s+(?:question|topic|task|subject)\b"
                       r"|\bchange (?:of|the) (?:topic|subject)\b|\bswitching gears\b|\bforget (?:that|it|about)\b")
# Material of its own after a colon or in quotes: "translate this: <text>", "summarize this \"...\"".
_OWN_MATERIAL = re.compile(r"[:\"“«]\s*\S+(?:\s+\S+){2,}")


def is_follow_up(text: str) -> bool:
    """True when `text` continues the task of the previous turn rather than starting a new one."""
    t = " ".join(text.strip().lower().replace("’", "'").split())
    if not t or len(t.split()) > MAX_WORDS:
        return False
    if _NEW_TASK.search(t) or _OWN_MATERIAL.search(t):
        return False
    return any(p.search(t) for p in _FOLLOW_UP)


def follow_up_source(text: str, context: list[Message] | None) -> str | None:
    """For a follow-up, the earlier user message it continues (the one to classify instead), else None."""
    if not context or not is_follow_up(text):
        return None
    for message in reversed(context):
        if message.get("role") == "user" and message.get("content", "").strip() != text.strip():
            if not is_follow_up(message["content"]):
                return message["content"]
    return None
