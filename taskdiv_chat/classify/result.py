"""What a classification says: a category letter (or "other"), how sure, and who decided."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import taxonomy

METHODS = ("local", "llm", "llm-fallback-local", "inherited", "override")


@dataclass
class Classification:
    letter: str  # "A".."H" or "other"
    confidence: float  # 0..1; for llm: how cleanly the answer parsed (no probabilities come back)
    method: str  # one of METHODS
    detail: str = ""  # a short human note: runner-up, fallback reason, ...

    @property
    def category(self) -> taxonomy.Category | None:
        return taxonomy.get(self.letter)

    @property
    def label(self) -> str:
        """"G Creative Writing" or "other"."""
        category = self.category
        return f"{category.letter} {category.name}" if category else taxonomy.OTHER

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Classification":
        letter = normalize_letter(str(data.get("letter", "")))
        if letter is None:
            raise ValueError(f"not a category: {data.get('letter')!r}")
        return cls(letter=letter, confidence=float(data.get("confidence", 0.0)),
                   method=str(data.get("method", "")), detail=str(data.get("detail", "")))


def normalize_letter(value: str) -> str | None:
    """A user-typed category ("g", "G", "Creative Writing", "creative", "other") -> "G"/"other", else None."""
    text = " ".join(value.strip().lower().replace("_", " ").split())
    if text in (taxonomy.OTHER, "none", "o"):
        return taxonomy.OTHER
    for category in taxonomy.CATEGORIES:
        if text in (category.letter.lower(), category.name.lower(), category.short.lower()):
            return category.letter
    return None
