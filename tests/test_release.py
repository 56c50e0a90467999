"""`make release-keys` and `make release VERSION=...` (packaging/release.py): what they refuse, each with one line
that says why, and the keys kept out of the repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.update_repo import ROOT, UpdateRepo, release_module, restamp, small_bundle

URL = "https://updates.example.com/creditdesk"


@pytest.fixture
def repo(tmp_path: Path) -> UpdateRepo:
    return UpdateRepo.create(tmp_path / "release")


def test_keys_are_private_and_the_root_metadata_is_what_builds_bake(repo: UpdateRepo) -> None:
    for name in ("root", "targets", "snapshot", "timestamp"):
        assert (repo.keys / name).stat().st_mode & 0o077 == 0, name
        assert (repo.keys / f"{name}.pub").is_file()
    root = json.loads(repo.root_json.read_text())
    assert root["signed"]["_type"] == "root" and root["signed"]["version"] == 1
    assert not (repo.repo / ".tufup-repo-config").exists()  # published as it is: nothing of the keys in it


def test_a_release_is_a_signed_target_with_its_notes(repo: UpdateRepo, tmp_path: Path) -> None:
    archive = repo.release(small_bundle(tmp_path / "b", "1.2.0", URL, repo.root_json), "1.2.0", "Faster start.")
    assert archive.name == "creditdesk-1.2.0.tar.gz"
    targets = json.loads((repo.repo / "metadata" / "targets.json").read_text())["signed"]["targets"]
    assert targets["creditdesk-1.2.0.tar.gz"]["custom"]["user"]["notes"] == "Faster start."


def test_release_refuses_what_could_not_update_or_would_mislead(repo: UpdateRepo, tmp_path: Path) -> None:
    module = release_module()
    bundle = small_bundle(tmp_path / "b", "1.2.0", URL, repo.root_json)

    def refused(version: str, folder: Path = bundle) -> str:
        with pytest.raises(module.ReleaseError) as error:
            module.release(repo.repo, repo.keys, folder, version, "", patch=False, compresslevel=1)
        return str(error.value)

    assert "is version 1.2.0, not 1.3.0" in refused("1.3.0")
    assert "is not a version" in refused("latest")
    assert "is not a built bundle" in refused("1.2.0", tmp_path)
    other = UpdateRepo.create(tmp_path / "other")
    stranger = small_bundle(tmp_path / "s", "1.2.0", URL, other.root_json)
    assert "trusts other release keys" in refused("1.2.0", stranger)
    restamp(bundle, "1.2.0", "", repo.root_json)
    assert "built without [updates] url and root" in refused("1.2.0")
    restamp(bundle, "1.2.0", URL, repo.root_json)
    repo.release(bundle, "1.2.0")
    assert "not newer than the latest release, 1.2.0" in refused("1.2.0")


def test_the_keys_must_be_outside_the_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = release_module().main
    assert main(["keys", "--keys", str(ROOT / "build" / "keys"), "--repo", str(tmp_path / "repo")]) == 2
    assert "is inside the repository: keep the release keys out of it" in capsys.readouterr().err
    assert not (ROOT / "build" / "keys").exists()
    assert main(["release", "--keys", str(tmp_path / "keys"), "--repo", str(tmp_path / "repo")]) == 2
    assert "say which version: make release VERSION=1.2.0" in capsys.readouterr().err


def test_an_app_trusting_the_first_keys_accepts_a_release_after_the_root_and_targets_keys_are_rotated(
        repo: UpdateRepo, tmp_path: Path) -> None:
    from desktop.core.updates import UpdateLayout, Updater
    from tests.helpers.update_repo import StaticServer

    module = release_module()
    with StaticServer(repo.repo) as server:
        installed = small_bundle(tmp_path / "installed", "1.0.0", server.url, repo.root_json)
        first_root = installed / "_internal" / "desktop" / "core" / "update-root.json"
        for role in ("root", "targets"):
            module.rotate(repo.repo, repo.keys, role)
            assert (repo.keys / "retired" / role).is_file() and not (repo.keys / role).exists()
        assert json.loads(repo.root_json.read_text())["signed"]["version"] == 3
        repo.release(small_bundle(tmp_path / "b", "1.1.0", server.url, repo.root_json), "1.1.0", "New keys.")
        outcome = Updater(UpdateLayout.under(tmp_path / "data"), server.url, "1.0.0", first_root).check()
        assert outcome.offer is not None and outcome.offer.notes == "New keys.", outcome
        # An unknown role is refused by its name.
        with pytest.raises(module.ReleaseError, match="one of root, targets"):
            module.rotate(repo.repo, repo.keys, "admin")
