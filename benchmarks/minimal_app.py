"""The baseline for benchmarks/startup.py: a minimal Textual app (Header, a scrollable area, an Input)."""

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Header, Input, Static


class MinimalApp(App):
    TITLE = "minimal-baseline"

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Static("hello")
        yield Input(placeholder="type here")


if __name__ == "__main__":
    MinimalApp().run()
