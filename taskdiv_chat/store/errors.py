"""What the store raises: problems phrased for the user."""

from __future__ import annotations


class StoreError(Exception):
    """A store problem phrased for the user (bad file, bad import, unknown id)."""


class NotFound(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else "not found"
