"""The widgets' job runner says how long a bar has run and about how long is left (issue 22 item 5: one overall
bar with the time spent and left, in napari as in the CLI), and the engine's wording of durations."""
from __future__ import annotations

from qtpy.QtWidgets import QWidget

from napari_fewcell.engine.core.progress import Progress, duration_text, time_left_text


def test_durations_read_as_a_person_says_them():
    assert duration_text(40.4) == "40 s" and duration_text(185) == "3 min 5 s"
    assert duration_text(3720 * 2) == "2 h 4 min"
    assert time_left_text(30, 0.25) == ", about 1 min 30 s left"
    assert time_left_text(30, 0) == "" and time_left_text(30, 1) == ""


def test_status_gives_time_spent_and_left_on_a_long_bar(qtbot, monkeypatch):
    from napari_fewcell._qt import jobs

    clock = iter(range(0, 10_000, 10))  # each reading of the clock: 10 s later
    monkeypatch.setattr(jobs.time, "monotonic", lambda: float(next(clock)))
    owner = QWidget()
    qtbot.addWidget(owner)
    seen = []

    def work():
        for k in range(5):
            yield Progress(k, 4, "segmenting")
        return "done"

    runner = jobs.job_controls(owner, {"go": ("Go", lambda: None)})
    show = owner.status.setText  # what the user reads, every time it changes
    owner.status.setText = lambda text: (seen.append(text), show(text))
    runner.start(lambda: {"make": work, "done": lambda result: owner.status.setText(f"result: {result}")}, "Starting")
    qtbot.waitUntil(lambda: not runner.busy, timeout=30_000)
    assert seen[-1] == "result: done"
    ticks = [t for t in seen if t.startswith("Segmenting")]
    assert ticks[0] == "Segmenting (0 of 4)"  # just started: no time yet
    assert "Segmenting (1 of 4) — 10 s spent, about 30 s left" in ticks
    assert ticks[-1].endswith("40 s spent")  # all done: nothing left to say
