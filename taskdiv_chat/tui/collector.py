"""Full garbage collections wait while answers stream, and run once the answer is on screen.

A full (oldest-generation) collection scans every object the conversation's widgets are made of: 0.14 s
for one 5,000-token answer, taken wherever the collector's counters fall. Mid-stream it is a key-echo
hitch; at the end it delays the finished answer (the end-of-answer lag went 0.25 -> 0.43 s when it
fell there). While a hold is on, only young collections run (they find most of the garbage);
the last release restores Python's thresholds and runs the held full collection, after the answer
is shown. (On Pythons whose collector is incremental, 3.14 on, the third threshold means nothing and
this costs nothing.)
"""

from __future__ import annotations

import gc

_holds = 0
_thresholds: tuple[int, int, int] | None = None


def hold() -> None:
    """No automatic full collection until the matching release()."""
    global _holds, _thresholds
    if _holds == 0:
        _thresholds = gc.get_threshold()
        young, middle, _ = _thresholds
        gc.set_threshold(young, middle, 2**31 - 1)
    _holds += 1


def release() -> None:
    """End a hold; the last one restores the thresholds and runs the full collection held back."""
    global _holds
    if _holds == 0:
        return
    _holds -= 1
    if _holds == 0:
        gc.set_threshold(*_thresholds)
        gc.collect()


def release_all() -> None:
    global _holds
    if _holds:
        _holds = 1
        release()


def holding() -> bool:
    return _holds > 0
