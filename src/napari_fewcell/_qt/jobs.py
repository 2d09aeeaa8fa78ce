"""Running one engine generator at a time off the GUI thread, with a progress bar and Cancel.

A *job* is a dict made on the GUI thread by a ``collect()`` function: ``make`` (a callable that
returns the engine generator, which yields ``Progress`` and returns the result) and ``done``
(called with the result on the GUI thread, only on success). Everything else in the dict is the
widget's own. Engine errors (``FewcellError``) come back as one sentence in the status line.
"""
from __future__ import annotations

import time
from typing import Callable

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy.QtWidgets import QLabel, QProgressBar, QPushButton

from ..engine.core.errors import FewcellError
from ..engine.core.progress import Progress, duration_text, time_left_text

SHOW_TIME_AFTER = 3.0  #: seconds a bar has run before its status also says the time spent and the time left


@thread_worker(start_thread=False)
def _run_job(holder: dict, make):
    """Drive the engine generator ``make()``; returns (result, None) or (None, error sentence)."""
    try:
        holder["gen"] = make()
        result = yield from holder["gen"]
    except FewcellError as err:
        return None, str(err)
    except RuntimeError as err:  # superqt would swallow a RuntimeError and never emit `finished`
        return None, f"The job failed unexpectedly: {type(err).__name__}: {err}"
    return result, None


def capitalised(text: str) -> str:
    """``text`` with its first letter upper case (an engine message or sentence at the start of a status line)."""
    return text[:1].upper() + text[1:]


def default_progress_text(p: Progress) -> str:
    return f"{capitalised(p.message)} ({p.done} of {p.total})"


class JobRunner:
    """One job at a time: disables ``actions`` while busy, drives ``progress``/``status``, and cancels."""

    def __init__(self, progress: QProgressBar, status: QLabel, cancel_button: QPushButton,
                 actions: list[QPushButton], fail: Callable[[str], None] | None = None,
                 cancelled_text: str = "Cancelled; nothing was added."):
        self.progress, self.status, self.cancel_button, self.actions = progress, status, cancel_button, actions
        self.fail = fail or self.show_failure
        self.cancelled_text = cancelled_text
        self.worker = None
        self.job: dict | None = None
        self.busy = self.cancel_requested = self.succeeded = False
        self.progress_text: Callable[[Progress], str] = default_progress_text
        self.phase, self.phase_t0, self.phase_done0 = None, 0.0, 0
        progress.setRange(0, 1)
        progress.setValue(0)
        cancel_button.setEnabled(False)
        cancel_button.clicked.connect(self.cancel)

    def show_failure(self, message: str) -> None:
        self.status.setText(message)
        show_error(message)

    def start(self, collect: Callable[[], dict], text: str) -> bool:
        """Collect the job on the GUI thread (a FewcellError is shown, nothing starts) and run it."""
        if self.busy:
            return False
        try:
            job = collect()
        except FewcellError as err:
            self.fail(str(err))
            return False
        self.job, job["holder"] = job, {}
        self.cancel_requested = self.succeeded = False
        self.phase = None
        self._set_busy(True)
        self.progress.setRange(0, 0)
        self.status.setText(text)
        worker = _run_job(job["holder"], job["make"])
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()
        return True

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        for button in self.actions:
            button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def cancel(self) -> None:
        if self.busy and self.worker is not None:
            self.cancel_requested = True
            self.worker.quit()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling after the current step…")

    def _on_progress(self, p: Progress) -> None:
        if self.cancel_requested or self.job is None:
            return
        if p.total <= 0:
            self.progress.setRange(0, 0)
            self.status.setText(f"{capitalised(p.message)}…")
            return
        self.progress.setRange(0, p.total)
        self.progress.setValue(p.done)
        phase, now = (p.message, p.total), time.monotonic()
        if phase != self.phase:  # a new bar: its own clock (the time left is that of this bar's work)
            self.phase, self.phase_t0, self.phase_done0 = phase, now, p.done
        spent = now - self.phase_t0
        frac = (p.done - self.phase_done0) / max(1, p.total - self.phase_done0)
        left = f" — {duration_text(spent)} spent{time_left_text(spent, frac)}" if spent >= SHOW_TIME_AFTER else ""
        self.status.setText(self.progress_text(p) + left)

    def _on_returned(self, returned) -> None:
        result, error = returned
        if self.cancel_requested:
            return
        if error:
            self.fail(error)
            return
        self.job["done"](result)  # results reach the viewer only here, on success
        self.succeeded = True

    def _on_errored(self, exc) -> None:
        # not a FewcellError (those are returned): a bug; napari's notifications show the traceback
        self.status.setText(f"The job failed unexpectedly: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        gen = (self.job or {}).get("holder", {}).get("gen")
        if gen is not None:
            try:
                gen.close()  # a cancelled engine generator is closed now, not at garbage collection
            except ValueError:
                pass
        self._set_busy(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(int(self.succeeded))
        self.job = None
        if self.cancel_requested:
            self.status.setText(self.cancelled_text)


def job_controls(owner, buttons: dict, status_text: str = "", **runner_options) -> JobRunner:
    """Give ``owner`` a ``<key>_button`` per ``buttons`` entry (key: (text, slot)), plus ``cancel_button``,
    ``progress`` and ``status`` widgets; returns the JobRunner (made with ``runner_options``, e.g.
    ``cancelled_text``) that disables the buttons while busy."""
    for key, (text, slot) in buttons.items():
        button = QPushButton(text)
        button.clicked.connect(slot)
        setattr(owner, f"{key}_button", button)
    owner.cancel_button = QPushButton("Cancel")
    owner.progress = QProgressBar()
    owner.status = QLabel(status_text)
    owner.status.setWordWrap(True)
    return JobRunner(owner.progress, owner.status, owner.cancel_button,
                     [getattr(owner, f"{k}_button") for k in buttons], **runner_options)
