"""The updater's decisions, against a real update repository (packaging/release.py's keys and signatures, python-tuf
verifying) served over HTTP on loopback from this process: what is offered, what is refused and why, what an
install, a revert and a failed first start leave behind, and that the user's own files are never touched."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core.settings import AppPaths
from desktop.core.updates import (
    CheckOutcome,
    Offer,
    Step,
    UpdateError,
    UpdateLayout,
    Updater,
    UpdateRefused,
    UpdateState,
    decide,
    first_start_passed,
    launch_target,
    plan_launch,
    revert,
    revert_target,
    take_notice,
    why_no_revert,
)
from tests.helpers.update_repo import StaticServer, UpdateRepo, release_module, small_bundle

NEWER = CheckOutcome(offer=Offer("0.2.0", "Faster start."))


@pytest.mark.parametrize(("case", "outcome", "held_back", "agrees", "in_flight", "step"), [
    ("no update", CheckOutcome(), (), None, False, Step.NOTHING),
    ("server out of reach", CheckOutcome(unavailable="cannot reach"), (), None, False, Step.NOTHING),
    ("newer: asked", NEWER, (), None, False, Step.ASK),
    ("newer, purchase in flight: still asked", NEWER, (), None, True, Step.ASK),
    ("older than the running one", CheckOutcome(offer=Offer("0.0.9")), (), None, False, Step.NOTHING),
    ("the same version", CheckOutcome(offer=Offer("0.1.0")), (), None, False, Step.NOTHING),
    ("tampered", CheckOutcome(refused="does not match its signed hash"), (), True, False, Step.REFUSE),
    ("stale (frozen)", CheckOutcome(refused="has expired"), (), None, False, Step.REFUSE),
    ("reverted from before", NEWER, ("0.2.0",), None, False, Step.NOTHING),
    ("user agrees", NEWER, (), True, False, Step.INSTALL),
    ("user agrees, purchase in flight", NEWER, (), True, True, Step.WAIT),
    ("user declines", NEWER, (), False, False, Step.LATER),
    ("user declines, purchase in flight", NEWER, (), False, True, Step.LATER),
])
def test_the_updater_decides(case: str, outcome: CheckOutcome, held_back: tuple[str, ...], agrees: bool | None,
                             in_flight: bool, step: Step) -> None:
    assert decide(outcome, "0.1.0", held_back, user_agrees=agrees, purchase_in_flight=in_flight) is step, case


# --- a real repository -------------------------------------------------------------------------------------------


class World:
    """An update repository on loopback, an installed bundle (0.1.0) trusting its keys, and a user's folders with
    a purchase in flight, a kept sign-in and settings."""

    def __init__(self, tmp: Path, server: StaticServer, repo: UpdateRepo) -> None:
        self.tmp, self.server, self.repo = tmp, server, repo
        self.installed = small_bundle(tmp / "installed", "0.1.0", server.url, repo.root_json)
        self.paths = AppPaths.under(tmp / "home").ensure()
        self.layout = UpdateLayout.under(self.paths.data_dir)
        self.user_files = {self.paths.purchase_records_file: '{"purchases": [{"session": "cs_in_flight"}]}\n',
                           self.paths.settings_file: '{"low_balance_warning": 37}\n',
                           self.paths.keyring_index_file: '["account:buyer@example.com"]\n'}
        for path, text in self.user_files.items():
            path.write_text(text)

    def trusted_root(self) -> Path:
        return self.installed / "_internal" / "desktop" / "core" / "update-root.json"

    def updater(self, running: str = "0.1.0") -> Updater:
        return Updater(self.layout, self.server.url, running, self.trusted_root())

    def publish(self, version: str, notes: str = "") -> Path:
        bundle = small_bundle(self.tmp / f"build-{version}", version, self.server.url, self.repo.root_json)
        return self.repo.release(bundle, version, notes)

    def user_files_unchanged(self) -> bool:
        return all(path.read_text() == text for path, text in self.user_files.items())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    repo = UpdateRepo.create(tmp_path / "release")
    with StaticServer(repo.repo) as server:
        yield World(tmp_path, server, repo)


def test_nothing_is_offered_when_no_newer_version_is_published(world: World) -> None:
    assert world.updater().check() == CheckOutcome()
    world.publish("0.2.0")
    assert world.updater(running="0.2.0").check() == CheckOutcome()  # the running one
    assert world.updater(running="0.3.0").check() == CheckOutcome()  # older than the running one


def test_a_newer_version_is_offered_with_what_is_new_and_installs_beside_the_running_one(world: World) -> None:
    world.publish("0.2.0", "Receipts name the buyer's country.")
    updater = world.updater()
    outcome = updater.check()
    assert outcome.offer is not None and outcome.offer.version == "0.2.0"
    assert outcome.offer.notes == "Receipts name the buyer's country."
    updater.install(outcome.offer)
    assert UpdateState.load(world.layout.state_file) == UpdateState(current="0.2.0", previous="0.1.0",
                                                                    unproven="0.2.0")
    assert (world.layout.versions_dir / "0.2.0" / "creditdesk").read_text() == "#!/bin/sh\necho creditdesk 0.2.0\n"
    assert not world.layout.staging_dir.exists()
    assert world.user_files_unchanged()


def test_a_tampered_archive_is_refused_and_the_installed_version_stays(world: World) -> None:
    archive = world.publish("0.2.0")
    archive.write_bytes(archive.read_bytes()[:-64] + b"\0" * 64)  # the same size, another hash
    updater = world.updater()
    outcome = updater.check()
    assert outcome.offer is not None  # the metadata verifies; the archive does not
    with pytest.raises(UpdateRefused, match="does not match its signed size and hash, so it was refused"):
        updater.install(outcome.offer)
    assert not world.layout.state_file.exists()
    assert not (world.layout.versions_dir / "0.2.0").exists()
    assert world.user_files_unchanged()


def test_metadata_changed_without_the_keys_is_refused(world: World) -> None:
    world.publish("0.2.0")
    targets = world.repo.repo / "metadata" / "targets.json"
    data = json.loads(targets.read_text())
    entry = data["signed"]["targets"]["creditdesk-0.2.0.tar.gz"]
    entry["custom"]["user"]["notes"] = "Free credits: enter your card again here."
    targets.write_text(json.dumps(data))
    outcome = world.updater().check()
    assert outcome.offer is None and outcome.refused is not None
    assert "refused" in outcome.refused and "unchanged" in outcome.refused
    assert decide(outcome, "0.1.0", (), user_agrees=True, purchase_in_flight=False) is Step.REFUSE


def test_metadata_signed_with_another_key_is_refused(world: World, tmp_path: Path) -> None:
    """An attacker's own repository, served where the real one was: its root is not the one the app trusts."""
    other = UpdateRepo.create(tmp_path / "attacker")
    shutil.rmtree(world.repo.repo / "metadata")
    shutil.copytree(other.repo / "metadata", world.repo.repo / "metadata")
    outcome = world.updater().check()
    assert outcome.refused is not None and "not signed by this app's release keys" in outcome.refused


def test_a_rollback_to_older_metadata_is_refused(world: World, tmp_path: Path) -> None:
    world.publish("0.2.0")
    older = world.repo.snapshot_metadata(tmp_path / "metadata-at-0.2.0")
    world.publish("0.3.0")
    assert world.updater().check().offer == Offer("0.3.0", "", world.updater().check().offer.size)  # type: ignore[union-attr]
    # A mirror (or an attacker) serves the metadata of before 0.3.0 again: the app has seen newer.
    shutil.rmtree(world.repo.repo / "metadata")
    shutil.copytree(older, world.repo.repo / "metadata")
    outcome = world.updater().check()
    assert outcome.refused is not None and "older release information" in outcome.refused, outcome


def test_stale_metadata_a_freeze_is_refused(world: World) -> None:
    """A server that keeps serving what it had once (a freeze) is noticed when the timestamp expires."""
    world.publish("0.2.0")
    module = release_module()
    with module.in_folder(world.repo.keys):
        repo = module.repository(world.repo.repo, world.repo.keys)
        repo._load_keys_and_roles(create_keys=False)
        repo.roles.set_expiration_date("timestamp", days=-1)
        repo.publish_changes(private_key_dirs=[world.repo.keys])
    outcome = world.updater().check()
    assert outcome.refused is not None and "has expired" in outcome.refused


def test_a_server_out_of_reach_is_not_a_refusal(world: World) -> None:
    updater = Updater(world.layout, "http://127.0.0.1:9", "0.1.0", world.trusted_root())
    outcome = updater.check()
    assert outcome.refused is None and outcome.offer is None
    assert outcome.unavailable == "The update server could not be reached; the app will try again later."


def test_install_needs_a_check_first_and_a_version_reverted_from_is_not_offered(world: World) -> None:
    world.publish("0.2.0")
    with pytest.raises(UpdateError, match="Check for updates first"):
        world.updater().install(Offer("0.2.0"))
    UpdateState(held_back=("0.2.0",)).save(world.layout.state_file)
    outcome = world.updater().check()
    assert decide(outcome, "0.1.0", ("0.2.0",), user_agrees=None, purchase_in_flight=False) is Step.NOTHING


# --- which version runs ------------------------------------------------------------------------------------------


def installed_version(layout: UpdateLayout, version: str) -> None:
    exe = layout.executable(version)
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)


PASSED = ("Creditdesk 0.2.0 self-test (installed bundle): backend x\nstart offscreen: ok\nqt platform plugins: ok\n"
          "data folder: ok (/d)\nbackend health: ok (x)\n", 0)
OFFLINE = (PASSED[0].replace("backend health: ok (x)", "backend health: FAILED: http://x: cannot connect"), 1)
BROKEN = (PASSED[0].replace("qt platform plugins: ok", "qt platform plugins: FAILED: no xcb"), 1)


@pytest.mark.parametrize(("case", "result", "passed"), [
    ("every check passed", PASSED, True),
    ("only the backend is out of reach: not the version's fault", OFFLINE, True),
    ("its own check failed", BROKEN, False),
    ("it crashed", ("Segmentation fault\n", -11), False),
    ("it did not end in time", ("Creditdesk 0.2.0 self-test\n", None), False),
    ("it said nothing", ("", 0), False),
])
def test_a_first_start_passes_its_self_test(case: str, result: tuple[str, int | None], passed: bool) -> None:
    assert first_start_passed(*result) is passed, case


def test_the_installed_bundle_runs_itself_when_no_update_is_installed(tmp_path: Path) -> None:
    plan = launch_target(tmp_path, "0.1.0", {})
    assert plan.executable is None and plan.version == "0.1.0"


def test_a_new_version_that_passes_its_first_self_test_runs_and_is_not_tested_again(tmp_path: Path) -> None:
    layout = UpdateLayout.under(tmp_path)
    installed_version(layout, "0.2.0")
    UpdateState(current="0.2.0", previous="0.1.0", unproven="0.2.0").save(layout.state_file)
    tested: list[Path] = []
    plan = plan_launch(layout, "0.1.0", lambda exe: (tested.append(exe), PASSED)[1])
    assert plan.executable == layout.executable("0.2.0") and tested == [layout.executable("0.2.0")]
    assert UpdateState.load(layout.state_file).unproven is None
    assert plan_launch(layout, "0.1.0", lambda exe: pytest.fail("tested twice")).version == "0.2.0"


def test_a_new_version_that_fails_its_first_self_test_goes_back_by_itself(tmp_path: Path) -> None:
    layout = UpdateLayout.under(tmp_path)
    installed_version(layout, "0.2.0")
    installed_version(layout, "0.3.0")
    UpdateState(current="0.3.0", previous="0.2.0", unproven="0.3.0").save(layout.state_file)
    plan = plan_launch(layout, "0.1.0", lambda exe: BROKEN)
    assert plan.executable == layout.executable("0.2.0")
    assert UpdateState.load(layout.state_file) == plan.state
    assert plan.state.current == "0.2.0" and plan.state.held_back == ("0.3.0",)
    assert take_notice(layout) == ("Version 0.3.0 did not pass its self-test at its first start, so version 0.2.0 "
                                   "was restored. Nothing of yours was changed.")
    assert take_notice(layout) is None  # said once
    # Back to the installed bundle when that was the previous one.
    UpdateState(current="0.3.0", previous="0.1.0", unproven="0.3.0").save(layout.state_file)
    assert plan_launch(layout, "0.1.0", lambda exe: BROKEN).executable is None


def test_an_update_stopped_half_way_leaves_the_installed_version_running(world: World) -> None:
    """Stopped while unpacking (staging half full) or before the state was written (versions/ whole but not
    current): the state is the commit point, so the launcher runs what it ran; the next install starts over."""
    world.publish("0.2.0")
    (world.layout.staging_dir / "0.2.0" / "_internal").mkdir(parents=True)
    (world.layout.versions_dir / "0.2.0").mkdir(parents=True)
    (world.layout.versions_dir / "0.2.0" / "creditdesk").write_text("half")
    plan = launch_target(world.paths.data_dir, "0.1.0", {})
    assert plan.executable is None
    updater = world.updater()
    outcome = updater.check()
    assert outcome.offer is not None
    updater.install(outcome.offer)
    assert (world.layout.versions_dir / "0.2.0" / "creditdesk").read_text().endswith("creditdesk 0.2.0\n")


def test_revert_goes_back_to_the_previous_version_and_keeps_the_user_s_files(world: World) -> None:
    world.publish("0.2.0")
    updater = world.updater()
    outcome = updater.check()
    assert outcome.offer is not None
    updater.install(outcome.offer)
    world.publish("0.3.0")
    updater = world.updater(running="0.2.0")
    outcome = updater.check()
    assert outcome.offer is not None
    updater.install(outcome.offer)
    assert UpdateState.load(world.layout.state_file).previous == "0.2.0"
    assert sorted(p.name for p in world.layout.versions_dir.iterdir()) == ["0.2.0", "0.3.0"]
    assert revert(world.layout, running="0.3.0", installed_base="0.1.0") == "0.2.0"
    state = UpdateState.load(world.layout.state_file)
    assert (state.current, state.previous, state.held_back) == ("0.2.0", None, ("0.3.0",))
    assert launch_target(world.paths.data_dir, "0.1.0", {}).executable == world.layout.executable("0.2.0")
    assert take_notice(world.layout) == "You went back to version 0.2.0 from version 0.3.0."
    # Once more: back to the installed bundle, and from there there is nothing to go back to.
    assert revert(world.layout, running="0.2.0", installed_base="0.1.0") == "0.1.0"
    assert launch_target(world.paths.data_dir, "0.1.0", {}).executable is None
    with pytest.raises(UpdateError, match="no previous version"):
        revert(world.layout, running="0.1.0", installed_base="0.1.0")
    assert world.user_files_unchanged()


def test_a_launched_version_does_not_launch_again(world: World) -> None:
    installed_version(world.layout, "0.2.0")
    UpdateState(current="0.2.0", previous="0.1.0").save(world.layout.state_file)
    assert launch_target(world.paths.data_dir, "0.1.0", {}).version == "0.2.0"
    assert launch_target(world.paths.data_dir, "0.1.0", {"CREDITDESK_LAUNCHED_FROM": "0.1.0"}).executable is None
    # A newer installed bundle (the .deb upgraded past the update) runs itself.
    assert launch_target(world.paths.data_dir, "0.4.0", {}).executable is None


# Help → Revert to previous version: which version it goes back to, or why it is greyed out (its tooltip).
REVERTS = [
    # (the state file, running, the installed bundle's version, goes back to, why not)
    (UpdateState(), "0.1.0", "0.1.0", None, "No previous version is kept"),
    (UpdateState(current="0.2.0", previous="0.1.0"), "0.1.0", "0.1.0", None,
     "Version 0.2.0 was just installed and runs from the next start"),
    (UpdateState(current="0.2.0", previous="0.1.0"), "0.2.0", "0.1.0", "0.1.0", ""),
    (UpdateState(current="0.3.0", previous=None), "0.3.0", "0.1.0", "0.1.0", ""),
]


@pytest.mark.parametrize(("state", "running", "base", "back", "why"), REVERTS)
def test_revert_says_where_it_goes_back_to_or_why_it_cannot(state: UpdateState, running: str, base: str,
                                                            back: str | None, why: str) -> None:
    assert revert_target(state, running, base) == back
    if back is None:
        assert why_no_revert(state, running, base).startswith(why)
