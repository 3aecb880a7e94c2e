"""taskdiv-chat: a terminal chat client that measures how varied regenerated answers are."""

__version__ = "0.1.0"
