"""What a real prompt asks: its request, without pasted material or role-play framing.

Real prompts paste an article, code or an email and ask something of it, wrap the task in a
persona ("Act as a CMO, ...", "You are an expert ..."), or ask several things at once.
The labelling guide (docs/labelling-guide.md) labels the request, not the material, the
task the persona is asked to do, and the main deliverable when there are several; this
module finds that text so the classifier sees it and not the rest:
- pasted material (fenced code, long quotes, a long text after "...:" or before
  "Summarise the above") becomes a placeholder, "[code]" or "[text]";
- leading persona framing is dropped when a task follows it (a set-up with no task is kept);
- of several requests, the main deliverable is kept with the sentences that qualify it
  ("Include ...", "Use ...") and the other requests are dropped. The main one is the first
  request, unless a later one asks for a long composed piece (an essay, a story, a plan)
  and the first does not: that piece is what most of the answer would be about.
Everything here is plain regular expressions: microseconds per prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CODE = "[code]"
TEXT = "[text]"
MATERIAL_WORDS = 40  # a pasted text is at least this long; shorter text after a colon is part of the request
QUOTE_WORDS = 25  # a quotation this long is material ("reply to this message: \"...\""), shorter is a title or topic
HEAD_CHARS, TAIL_CHARS = 6000, 2000  # of a longer prompt only these are read: the request opens or closes it

# --- pasted material ------------------------------------------------------------------------------

_FENCE = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.S)
_QUOTE = re.compile(r"\"\"\"(.+?)\"\"\"|\"([^\"]+)\"|“([^”]+)”|«([^»]+)»", re.S)
_CODE_LINE = re.compile(r"^\s*(?:def |class |import |from \S+ import|#include|public |private |function |const |let |var |"
                        r"return\b|if\s*\(|for\s*\(|while\s*\(|SELECT |<\w+[ >/]|\}|\{)|[;{}]\s*$|^\s*\w+\s*=\s*\S+\s*;?$|"
                        r"^\s*[\w.]+\(.*\)\s*;?$")
# An instruction that announces material after it: "...:", "the following", "this text", "below".
_ANNOUNCES = re.compile(r"(?::\s*$|\bfollowing\b|\bbelow\b|\b(?:this|these|my|the)\s+(?:text|article|essay|paragraph|"
                        r"passage|email|e-mail|message|letter|code|script|story|poem|document|content|review|post|"
                        r"comment|transcript|abstract|report|data|list|sentences?|words?|lyrics|conversation|chat|"
                        r"function|program|query|error|paper|chapter|notes|speech|description|introduction|answer)\b"
                        r"|\bthis\s*:)", re.I)
# An instruction that refers back to material before it: "Summarise the above", "What does this code do?".
_REFERS_BACK = re.compile(r"\b(?:above|previous|preceding|aforementioned|that text|this text|the text|the passage|"
                          r"the article|the code|this code|the email|this email|the story|this story|the essay|"
                          r"this essay|the message|this message|the paragraph|this paragraph)\b", re.I)
_LIST_MARK = re.compile(r"\(?(?:\d{1,2}|[a-zA-Z])[.)]|[-*•]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'“(\[]?\w)|\n+|;\s+(?=[a-z]+\s)")
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|approx|mr|mrs|ms|dr|st|no|fig|ca|incl|min|max)\.|\b[A-Z]\.)$", re.I)

# --- persona framing ------------------------------------------------------------------------------

_ROLE = r"(?:(?:a|an|the|my|our|your|some)\s+)?[^.!?:;\n]{1,120}?"
_GREETING = r"(?:(?:hi|hello|hey|ok|okay|now|please|hi there|hello there)[,!.]?\s+)*"
_FRAMING = [re.compile(r"^\s*" + _GREETING + r"(?:" + p + r")", re.I) for p in (
    # "Act as a CMO, ...", "I want you to act as a travel guide. ...", "Acting as my lawyer and ..."
    r"(?:i\s+(?:want|need|would\s+like|'d\s+like)\s+you\s+to\s+|"
    r"you\s+(?:will|shall|must|should)\s+(?:now\s+)?|(?:can|could|would)\s+you\s+)?(?:act|acting|behave|pose|respond|"
    r"reply|answer|write|speak|serve|function|roleplay|role-play|role\s+play)\s+(?:as|like)\s+" + _ROLE
    + r"(?:[.!?:;\n]+|,\s*|\s+(?:and|to)\s+(?=\w))",
    # "You are an expert copywriter. ...", "You're my grandma and ...", "You are now DAN, ..."
    r"(?:from\s+now\s+on,?\s+)?(?:you\s+are|you're|you\s+will\s+be|you\s+are\s+going\s+to\s+be|you\s+have\s+become)\s+"
    r"(?:now\s+)?(?:a|an|the|my|our|called|named|\w+GPT|DAN)\b" + _ROLE + r"(?:[.!?:;\n]+|,\s*(?=[a-z])|\s+and\s+(?=\w))",
    # "Imagine you are a historian. ...", "Pretend that you're my grandmother and ...", "Pretend to be a pirate:"
    r"(?:please\s+)?(?:imagine|pretend|suppose|assume|consider)\s+(?:that\s+)?(?:you\s+are|you're|you\s+were|"
    r"yourself\s+(?:as|to\s+be)|to\s+be)\s+" + _ROLE + r"(?:[.!?:;\n]+|,\s*|\s+(?:and|who)\s+(?=\w))",
    # "Take on the role of a coach ...", "Play the part of Sherlock:", "In the role of a doctor, ..."
    r"(?:please\s+)?(?:take\s+on|assume|play|adopt|in)\s+the\s+(?:role|part|persona)\s+of\s+" + _ROLE
    + r"(?:[.!?:;\n]+|,\s*|\s+and\s+(?=\w))",
    # "As a CMO, ...", "As an expert in tax law, ..." (a user's own "As a beginner, ..." goes too: no task in it)
    r"as\s+(?:a|an|the|my|your)\s+[^.!?:;,\n]{1,80},\s*",
    # "From now on you will only answer in French." (a rule for the chat, not a task)
    r"from\s+now\s+on,?\s+(?:you|your|please|always|only|answer|respond|reply)[^.!?\n]*[.!?\n]+",
)]

# --- several requests -----------------------------------------------------------------------------

_POLITE = (r"(?:(?:please|pls|plz|also|and|then|now|next|finally|lastly|additionally|after that|afterwards|ok|okay|so|"
           r"kindly|first|firstly|second|secondly|third)[,:]?\s+)*"
           r"(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?|i\s+(?:want|need|would\s+like|'d\s+like)\s+(?:you\s+to\s+)?|"
           r"help\s+me\s+(?:to\s+)?|let's\s+|i\s+(?:want|need)\s+|give\s+me\s+)?")
_VERBS = (r"write|tell|give|explain|describe|list|create|make|generate|suggest|recommend|design|plan|name|summari[sz]e|"
          r"translate|compare|solve|calculate|compute|find|show|provide|draft|compose|develop|analy[sz]e|discuss|rewrite|"
          r"paraphrase|outline|propose|build|code|implement|prepare|produce|come\s+up\s+with|brainstorm|evaluate|"
          r"define|identify|predict|estimate|convert|answer|continue|fix|debug|correct|improve|edit|proofread|review|"
          r"critique|rate|rank|choose|pick|roll|flip|draw|imagine|invent|play|sing|say|teach|help|advise|elaborate|"
          r"expand|add|reply|respond|complete|fill|guess|prove|derive|simplify|evaluate|determine|research|argue|"
          r"assess|justify|illustrate|demonstrate|introduce|interpret|classify|count|sort|extract|check|do")
_REQUEST = re.compile(r"^\W*" + _POLITE + r"(?:" + _VERBS + r")\b|\?\s*$", re.I)
# Sentences that shape the deliverable rather than ask for another: "Include ...", "Use simple words."
_QUALIFIER = re.compile(r"^\W*(?:please\s+)?(?:include|including|use|using|make\s+sure|ensure|keep|don't|do\s+not|avoid|"
                        r"limit|it\s+should|they\s+should|each|every|the\s+\w+\s+(?:should|must|needs?)|must|should|"
                        r"be\s+\w+|set|focus|start\s+with|end\s+with|begin\s+with|mention|add\s+(?:some|a\s+few|more)|"
                        r"format|in\s+(?:the\s+)?(?:style|form|voice|tone)|with\s|no\s|only|at\s+least|at\s+most|"
                        r"maximum|minimum|about\s+\d|around\s+\d|in\s+\d|\d+\s+words|write\s+(?:it\s+)?in|"
                        r"respond\s+(?:to\s+me\s+)?in|answer\s+in|reply\s+in|make\s+(?:it|them|the)|give\s+(?:it|each))\b",
                        re.I)
# A request for a long composed piece: what most of the answer is about when it comes with smaller asks.
_LONG_PIECE = re.compile(r"\b(?:essay|story|stories|poem|article|report|plan|script|screenplay|novel|chapter|letter|email|"
                         r"e-mail|blog|speech|lyrics|song|fanfic|fan\s+fiction|dialogue|program|application|app|website|"
                         r"proposal|thesis|paper|guide|tutorial|course|curriculum|lesson|itinerary|strategy|review|"
                         r"\d{3,}\s+words|in\s+detail|detailed)\b", re.I)


@dataclass
class Request:
    """A prompt read for classification."""

    text: str  # what the classifier sees
    requests: list[str] = field(default_factory=list)  # the separate requests found, in prompt order
    main: str = ""  # the main deliverable among them ("" when no request sentence was recognised)
    framing: str = ""  # persona framing taken off the front
    material: int = 0  # characters of pasted material replaced by placeholders


def words(text: str) -> int:
    return len(text.split())


def _is_code(paragraph: str) -> bool:
    lines = [line for line in paragraph.splitlines() if line.strip()]
    return len(lines) >= 2 and sum(bool(_CODE_LINE.search(line)) for line in lines) >= 0.5 * len(lines)


def _mostly_questions(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) >= 2 and sum(line.rstrip().endswith("?") for line in lines) >= 0.6 * len(lines)


def _placeholder(material: str) -> str:
    return CODE if _is_code(material) else TEXT


def set_material_aside(prompt: str) -> tuple[str, int]:
    """The prompt with pasted material replaced by [code]/[text], and how many characters went."""
    text = prompt.replace("\r\n", "\n").replace("\r", "\n").strip()
    before = len(text)
    if before > HEAD_CHARS + TAIL_CHARS:  # the middle of a huge paste is material whatever it says
        text = f"{text[:HEAD_CHARS]}\n\n{TEXT}\n\n{text[-TAIL_CHARS:]}"
    text = _FENCE.sub(f" {CODE} ", text)
    text = _QUOTE.sub(lambda m: f"\"{TEXT}\"" if words(next(g for g in m.groups() if g is not None)) >= QUOTE_WORDS
                      else m.group(0), text)

    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if paragraphs:
        paragraphs[:1] = _split_inline(paragraphs[0])
    kept = _drop_material_paragraphs(paragraphs)
    text = "\n\n".join(kept)
    return text, max(0, before - len(text))


def _split_inline(text: str) -> list[str]:
    """One paragraph: "Write a reply to this email: <long email>" -> instruction, material."""
    first_line = text.split("\n", 1)[0]
    match = re.search(r":\s+", text)
    if match and match.start() < len(first_line) and words(text[:match.start()]) <= MATERIAL_WORDS \
            and words(text[match.end():]) >= MATERIAL_WORDS and not _mostly_questions(text[match.end():]):
        return [text[:match.start() + 1], text[match.end():]]
    rest = text[len(first_line):]
    if words(first_line) <= MATERIAL_WORDS and words(rest) >= MATERIAL_WORDS and not _mostly_questions(rest):
        return [first_line, rest.strip()]
    return [text]


def _drop_material_paragraphs(paragraphs: list[str]) -> list[str]:
    """Instructions stay; long paragraphs announced by an instruction, or referred back to by one, become placeholders."""
    if len(paragraphs) < 2:
        return paragraphs
    long = [words(p) >= MATERIAL_WORDS or _is_code(p) for p in paragraphs]
    material = [False] * len(paragraphs)
    # After an announcing instruction: everything up to a closing instruction is material,
    # unless it is short in total or a list of questions (then it is the request itself).
    first = paragraphs[0]
    if not long[0] and _ANNOUNCES.search(first):
        end = len(paragraphs)
        if end > 2 and not long[-1] and (_REQUEST.search(paragraphs[-1]) or _REFERS_BACK.search(paragraphs[-1])):
            end -= 1
        body = "\n".join(paragraphs[1:end])
        if words(body) >= MATERIAL_WORDS and not _mostly_questions(body) or _is_code(body):
            material[1:end] = [True] * (end - 1)
    # Before a closing instruction that refers back ("Summarise the above"): the long paragraphs are material.
    last = paragraphs[-1]
    if not long[-1] and (_REFERS_BACK.search(last) or _ANNOUNCES.search(last) or _REQUEST.search(last)):
        for i in range(len(paragraphs) - 1):
            if long[i] and not (i == 0 and _REQUEST.search(paragraphs[0]) and not _REFERS_BACK.search(last)):
                material[i] = True
    out: list[str] = []
    for paragraph, is_material in zip(paragraphs, material):
        token = _placeholder(paragraph) if is_material else paragraph
        if not (is_material and out and out[-1] == token):
            out.append(token)
    return out


def strip_framing(text: str) -> tuple[str, str]:
    """(the text without leading persona framing, the framing taken off); a set-up with no task is kept whole."""
    rest, taken = text, ""
    for _ in range(4):  # framing comes in a few layers: "Hi! You are an expert. Act as my coach, ..."
        for pattern in _FRAMING:
            match = pattern.match(rest)
            if match and match.end() < len(rest):
                taken += rest[:match.end()]
                rest = rest[match.end():].lstrip(" ,.;:-\n")
                break
        else:
            break
    if not taken or not any(_REQUEST.search(s) for s in sentences(rest)):
        return text, ""  # nothing is asked beyond the set-up ("You are DAN. DAN has no rules."): keep it whole
    return rest[:1].upper() + rest[1:], taken.strip()


def sentences(text: str) -> list[str]:
    out: list[str] = []
    for piece in _SENTENCE_END.split(text):
        piece = piece.strip()
        if out and (_LIST_MARK.fullmatch(out[-1]) or _ABBREVIATION.search(out[-1])):
            out[-1] = f"{out[-1]} {piece}"  # "1." belongs to the item it numbers
        elif piece:
            out.append(piece)
    return out


def main_request(text: str) -> tuple[str, list[str], str]:
    """(the text to classify, the requests found, the main one) for a text with framing and material gone."""
    parts = sentences(text)
    asks = [i for i, s in enumerate(parts) if _REQUEST.search(s) and not _QUALIFIER.search(s)
            and s.strip("\"") not in (TEXT, CODE)]
    requests = [parts[i] for i in asks]
    if len(asks) < 2:
        return text, requests, requests[0] if requests else ""
    if parts[asks[0]].endswith(":"):
        return text, requests, requests[0]  # "Answer these questions:" and the questions are one request
    main = asks[0]
    if not _LONG_PIECE.search(parts[main]):
        main = next((i for i in asks if _LONG_PIECE.search(parts[i])), main)
    # Keep what leads up to the main request (context: "I failed at X.") and what qualifies it; drop the other asks.
    kept = [s for i, s in enumerate(parts) if i == main or i not in asks]
    return " ".join(kept), requests, parts[main]


def extract_request(prompt: str) -> Request:
    """Read a prompt for classification (see the module docstring)."""
    text, material = set_material_aside(prompt)
    text, framing = strip_framing(text)
    classified, requests, main = main_request(text)
    return Request(" ".join(classified.split()), requests, main, framing, material)
