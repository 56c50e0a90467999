"""The app's side of updates: check the configured update server at start and then daily (on a worker), offer
what is new, install only when the user agrees and no purchase is in flight, and Help → Revert to previous
version. The decisions and the files are desktop/core/updates.py's; this only schedules them and says them."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core import updates
from desktop.core.build_config import BuildConfig
from desktop.core.updates import CheckOutcome, Offer, Step, UpdateError, UpdateLayout, Updater, UpdateState
from desktop.qt.workers import Workers

log = logging.getLogger("desktop.updates")
WAIT_FOR_PURCHASE_MS = 30_000  # how often an agreed update looks again whether the purchase has ended


class UpdateController(QObject):
    offered = Signal(object)  # Offer: ask the user
    said = Signal(str)  # a sentence for the user: refused, installed, reverted, a notice from the launcher
    installed = Signal(str)  # the version that runs from the next start
    checking = Signal(bool)  # a check (or an install) is under way
    revertChanged = Signal(object)  # the version Revert goes back to, or None

    def __init__(self, workers: Workers, data_dir: Path, config: BuildConfig,
                 purchase_in_flight: Callable[[], bool], *, environ: dict[str, str] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        env = dict(os.environ if environ is None else environ)
        self.workers = workers
        self.layout = UpdateLayout.under(data_dir)
        self.running = config.version or ""
        self.installed_base = env.get(updates.LAUNCHED_ENV) or self.running
        self.url = config.update_url
        self.trusted_root = updates.trusted_root_path()
        self.purchase_in_flight = purchase_in_flight
        self.declined: set[str] = set()  # asked and declined this session
        self.agreed: Offer | None = None  # agreed while a purchase was in flight
        self.revert_to: str | None = None  # read from the state file on the disk worker
        self.revert_why = ""  # why there is none to go back to (Help's greyed-out item says it)
        self._updater: Updater | None = None
        self._busy = False
        self.daily = QTimer(self)
        self.daily.setInterval(updates.CHECK_EVERY * 1000)
        self.daily.timeout.connect(self.check)
        self.wait_timer = QTimer(self)
        self.wait_timer.setInterval(WAIT_FOR_PURCHASE_MS)
        self.wait_timer.timeout.connect(self._install_when_free)

    @property
    def enabled(self) -> bool:
        """This build updates itself: it names an update server and knows its version."""
        return bool(self.url and self.running)

    def start(self) -> None:
        """At start: say what the launcher kept to say (a revert, a failed first start), then check, then daily."""
        self.workers.write(lambda: updates.take_notice(self.layout), self._notice)
        self.refresh_revert()
        if self.enabled:
            self.check()
            self.daily.start()

    def _notice(self, notice: str | None) -> None:
        if notice:
            self.said.emit(notice)

    def check(self, *, asked: bool = False) -> None:
        if not self.enabled:
            if asked:
                self.said.emit("This build of the app does not update itself: its maker named no update server.")
            return
        if self._busy:
            return
        assert self.url is not None
        updater = Updater(self.layout, self.url, self.running, self.trusted_root)
        self._busy = True
        self.checking.emit(True)
        self.workers.run(lambda: (updater, updater.check(), UpdateState.load(self.layout.state_file)),
                         lambda result: self._checked(*result, asked=asked), self._failed)

    def _checked(self, updater: Updater, outcome: CheckOutcome, state: UpdateState, *, asked: bool) -> None:
        self._busy = False
        self.checking.emit(False)
        self._updater = updater
        held_back = state.held_back
        waiting = state.current if state.current and updates.newer(state.current, self.running) else None
        if outcome.offer is not None and waiting and not updates.newer(outcome.offer.version, waiting):
            # Installed already, to run from the next start: offering it again would install it twice.
            if asked:
                self.said.emit(f"Version {waiting} is installed: it runs the next time you start the app.")
            return
        step = updates.decide(outcome, self.running, held_back, user_agrees=None,
                              purchase_in_flight=self.purchase_in_flight())
        if step is Step.REFUSE:
            assert outcome.refused is not None
            self.said.emit(outcome.refused)
        elif step is Step.ASK:
            assert outcome.offer is not None
            if asked or outcome.offer.version not in self.declined:
                self.offered.emit(outcome.offer)
        elif asked:
            self.said.emit(outcome.unavailable or f"You have the newest version ({self.running}).")

    def answer(self, offer: Offer, agrees: bool) -> None:
        """The user's answer to an offer."""
        step = updates.decide(CheckOutcome(offer=offer), self.running, (), user_agrees=agrees,
                              purchase_in_flight=self.purchase_in_flight())
        if step is Step.LATER:
            self.declined.add(offer.version)
            log.info("update %s declined for now", offer.version)
        elif step is Step.WAIT:
            self.agreed = offer
            self.wait_timer.start()
            self.said.emit(f"Version {offer.version} will be installed once your purchase has ended.")
        elif step is Step.INSTALL:
            self._install(offer)

    def _install_when_free(self) -> None:
        if self.agreed is not None and not self.purchase_in_flight():
            self.wait_timer.stop()
            offer, self.agreed = self.agreed, None
            self._install(offer)

    def _install(self, offer: Offer) -> None:
        updater = self._updater
        if updater is None or self._busy:
            return
        self._busy = True
        self.checking.emit(True)

        def done(_: object) -> None:
            self._busy = False
            self.checking.emit(False)
            self.installed.emit(offer.version)
            self.refresh_revert()

        self.workers.run(lambda: updater.install(offer), done, self._failed)

    def _failed(self, error: BaseException) -> None:
        self._busy = False
        self.checking.emit(False)
        if isinstance(error, UpdateError):
            log.warning("update: %s", error)
            self.said.emit(str(error))
        else:
            self.workers.report(error)

    def refresh_revert(self) -> None:
        """Read which version Revert would go back to (on the disk worker), then say it."""
        def read() -> tuple[str | None, str]:
            state = UpdateState.load(self.layout.state_file)
            back = updates.revert_target(state, self.running, self.installed_base)
            return back, "" if back else updates.why_no_revert(state, self.running, self.installed_base)

        self.workers.write(read, self._revert_known)

    def _revert_known(self, found: tuple[str | None, str]) -> None:
        self.revert_to, self.revert_why = found
        self.revertChanged.emit(self.revert_to)

    def revert(self) -> None:
        def done(version: str) -> None:
            self.said.emit(f"Version {version} runs the next time you start the app.")
            self.installed.emit(version)
            self.refresh_revert()

        self.workers.run(lambda: updates.revert(self.layout, self.running, self.installed_base), done,
                         self._failed)
