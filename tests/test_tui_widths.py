"""What stays visible when the terminal is narrow: the answer footer's figures, every column of the help."""

from __future__ import annotations

import pytest

from taskdiv_chat.tui import services
from tests.support.pilot import Script, classified, make_app, send, settled, started, wait_for


def shown_lines(app, widget) -> list[str]:
    """The screen's rendered text on the rows `widget` covers, clipped to its columns."""
    region = widget.region
    strips = app.screen._compositor.render_strips()
    return [strips[y].text[region.x:region.right] for y in range(region.y, region.bottom)]


@pytest.mark.parametrize("width", [120, 80])
async def test_answer_footer_keeps_time_strategy_navigator_and_badge(width, fake_server, fake_backend_settings):
    fake_server.responder = Script(["A dragon guards a castle.", "A robot wakes up alone on Mars."],
                                   letter="G")
    settings = fake_backend_settings.model_copy(deep=True)
    settings.backends["fake"].model = "meta-llama/Llama-3.1-70B-Instruct-Turbo-with-a-long-suffix"
    app = make_app(settings)
    async with app.run_test(size=(width, 30)) as pilot:
        await started(pilot)
        answer = await send(pilot, "Write a short story")
        assert await classified(pilot, answer) == "G"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(answer.variants) == 2 and not app.screen.answering, what="regen")
        # the widest badge there is: the one shown while the judge works
        answer.badge.show_text(services.pending_badge({"n": 2, "generic": {"embedding_diversity": 0.42}}))
        await settled(pilot)
        answer.current.seconds, answer.current.tokens = 12.3, 1234
        answer.refresh_footer()
        await pilot.pause(0.2)
        footer = " ".join(" ".join(shown_lines(app, answer.query_one("#footer"))).split())  # wrapped lines joined
        strategy = answer.current.strategy
        assert strategy
        badge = str(answer.badge.render())
        for part in ("1234 tok", "12.3 s", strategy, "← 2/2 →", " ".join(badge.split())):
            assert part in footer, (part, footer)
        assert "fake · meta" in footer  # the model is shortened, not dropped


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
async def test_help_shows_every_column_and_whole_descriptions(size, fake_server, fake_backend_settings):
    fake_server.responder = Script(["unused"])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=size) as pilot:
        await started(pilot)
        await pilot.press("f1")
        await pilot.pause(0.2)
        table = app.screen.query_one("DataTable")
        assert table.virtual_size.width <= table.scrollable_content_region.width  # nothing off to the right
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        row = next(i for i, r in enumerate(rows) if r[2] == "homogenization")
        table.move_cursor(row=row)
        await pilot.pause(0.2)
        lines = shown_lines(app, table)
        x = 0
        for column, text in zip(table.ordered_columns, rows[row]):
            width = column.get_render_width(table)
            shown = " ".join(" ".join(line[x:x + width] for line in lines).split())  # the column, lines joined
            assert " ".join(text.split()) in shown, (column.label, text, shown)
            x += width
