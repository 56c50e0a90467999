"""``make release-keys``, ``make release VERSION=...`` and ``make release-refresh``: the update repository.

    python packaging/release.py keys    [--keys DIR] [--repo DIR]
    python packaging/release.py release --version V [--bundle dist/creditdesk] [--notes TEXT | --notes-file F]
                                        [--keys DIR] [--repo DIR] [--patch] [--compresslevel N]
    python packaging/release.py refresh [--keys DIR] [--repo DIR]
    python packaging/release.py rotate  --role ROLE [--keys DIR] [--repo DIR]

The update repository (``--repo``, default ``dist/update-repo``) is what the update server publishes as it is:
``metadata/`` (TUF's root, targets, snapshot and timestamp, signed) and ``targets/`` (one
``creditdesk-<version>.tar.gz`` a release, and a ``.patch`` beside it when asked for). The signing keys are in
``--keys`` (default ``$CREDITDESK_RELEASE_KEYS``), a folder that must not be inside this repository.

``keys`` creates the four keys (ed25519, via tufup/securesystemslib) and the repository's first root metadata,
``metadata/root.json``: the file a build bakes in as the trust anchor (build.toml ``[updates] root``).
``release`` adds a build's bundle as a new signed target; its notes are the target's custom metadata, which the
app shows as what is new. ``refresh`` signs the timestamp, snapshot and targets again with new expiry dates: an
update server (or a mirror) that stops publishing is noticed by the app when the timestamp expires (7 days).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desktop.core.build_config import BAKED_FILE, BuildConfig  # noqa: E402
from desktop.core.updates import APP_NAME, TRUSTED_ROOT_FILE, parse_version  # noqa: E402

KEYS_ENV = "CREDITDESK_RELEASE_KEYS"
DEFAULT_REPO = ROOT / "dist" / "update-repo"
# Days each role's signature stays valid. The timestamp's is how long a frozen server can hold an update back
# unnoticed: `make release-refresh` must run more often than that (weekly from a scheduler, say).
EXPIRATION_DAYS = {"root": 365, "targets": 90, "snapshot": 30, "timestamp": 7}
BAKED_IN_BUNDLE = Path("_internal") / "desktop" / "core"


class ReleaseError(Exception):
    pass


def keys_folder(given: Path | None) -> Path:
    folder = given or (Path(os.environ[KEYS_ENV]) if os.environ.get(KEYS_ENV) else None)
    if folder is None:
        raise ReleaseError(f"say where the release keys are: --keys DIR or {KEYS_ENV}=DIR (a folder outside this "
                           "repository; `make release-keys` creates them)")
    folder = folder.expanduser().resolve()
    if folder.is_relative_to(ROOT):
        raise ReleaseError(f"{folder} is inside the repository: keep the release keys out of it (and out of git)")
    return folder


@contextlib.contextmanager
def in_folder(folder: Path) -> Iterator[None]:
    """tufup keeps its configuration (.tufup-repo-config) in the working directory: the keys folder (not the
    published repository)."""
    before = Path.cwd()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def repository(repo: Path, keys: Path) -> Any:
    """tufup's Repository, with the key names, thresholds and encrypted keys its configuration in the keys folder
    (the working directory, see :func:`in_folder`) keeps: after a rotation they are not the defaults."""
    from tufup.repo import Repository

    saved = Repository.load_config() if (keys / Repository.config_filename).exists() else {}
    return Repository(app_name=APP_NAME, repo_dir=repo.resolve(), keys_dir=keys,
                      expiration_days=dict(EXPIRATION_DAYS), key_map=saved.get("key_map"),
                      encrypted_keys=saved.get("encrypted_keys"), thresholds=saved.get("thresholds"))


def rotate(repo: Path, keys: Path, role: str) -> str:
    """A new key for ``role`` in place of the one it has (lost, leaked or due), signed into a new root metadata
    version by the old and the new root keys (installed apps follow the chain of root versions). The old private
    key moves to ``retired/``. Returns the new key's name."""
    from securesystemslib.interface import generate_and_write_unencrypted_ed25519_keypair

    if role not in EXPIRATION_DAYS:
        raise ReleaseError(f"ROLE={role!r}: one of {', '.join(EXPIRATION_DAYS)}")
    repo = repo.resolve()
    with in_folder(keys):
        repo_ = repository(repo, keys)
        repo_._load_keys_and_roles(create_keys=False)
        old_names = list(repo_.key_map[role])
        if len(old_names) != 1:
            raise ReleaseError(f"{role} has {len(old_names)} keys ({', '.join(old_names)}); rotate by hand")
        name = f"{role}-{datetime.datetime.now(datetime.UTC):%Y%m%d%H%M%S}"
        generate_and_write_unencrypted_ed25519_keypair(filepath=str(keys / name))
        (keys / name).chmod(0o600)
        repo_.replace_key(old_names[0], keys / f"{name}.pub", new_private_key_encrypted=False)
        repo_.publish_changes(private_key_dirs=[keys])
    retired = keys / "retired"
    retired.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (keys / old_names[0]).replace(retired / old_names[0])
    return name


def create_keys(repo: Path, keys: Path) -> Path:
    """The keys (unless there are some) and the repository's first metadata; returns the root metadata's path."""
    repo = repo.resolve()
    with in_folder(keys):
        existing = (repo / "metadata" / "root.json").exists()
        if existing and not all((keys / name).exists() for name in ("root", "targets", "snapshot", "timestamp")):
            raise ReleaseError(f"{repo} already has metadata but {keys} lacks its keys: give the keys folder it was "
                               "made with")
        repo_ = repository(repo, keys)
        repo_.initialize()  # creates the key pairs that are missing, then root.json
        repo_.publish_changes(private_key_dirs=[keys])
    for private in ("root", "targets", "snapshot", "timestamp"):
        with contextlib.suppress(FileNotFoundError):
            (keys / private).chmod(0o600)
    return repo / "metadata" / "root.json"


def bundle_config(bundle: Path) -> BuildConfig:
    baked = bundle / BAKED_IN_BUNDLE / BAKED_FILE
    if not baked.is_file():
        raise ReleaseError(f"{bundle} is not a built bundle (no {BAKED_IN_BUNDLE / BAKED_FILE}); run make dist")
    return BuildConfig.from_json(baked.read_text(encoding="utf-8"))


def make_archive(bundle: Path, targets: Path, version: str, compresslevel: int) -> Path:
    """creditdesk-<version>.tar.gz of the bundle's folder, as tufup names and unpacks it (gzip level 6 by default:
    level 9, tarfile's, takes three times as long on a 200 MB bundle for a 0.5 % smaller archive)."""
    targets.mkdir(parents=True, exist_ok=True)
    archive = targets / f"{APP_NAME}-{version}.tar.gz"
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=compresslevel, format=tarfile.PAX_FORMAT) as tar:
        tar.add(bundle, arcname=".", recursive=True)
    partial.replace(archive)
    return archive


def release(repo: Path, keys: Path, bundle: Path, version: str, notes: str, *, patch: bool,
            compresslevel: int = 6) -> Path:
    """Add the bundle as version ``version``'s target, signed; returns the archive's path."""
    from tufup.common import KEY_REQUIRED, SUFFIX_PATCH, Patcher

    if parse_version(version) is None:
        raise ReleaseError(f"VERSION={version!r} is not a version (PEP 440: 1.2.0, 1.3.0rc1)")
    bundle = bundle.resolve()
    config = bundle_config(bundle)
    if config.version != version:
        raise ReleaseError(f"{bundle} is version {config.version}, not {version}: set the version in "
                           "pyproject.toml and run make dist first")
    if not config.update_url or not (bundle / BAKED_IN_BUNDLE / TRUSTED_ROOT_FILE).is_file():
        raise ReleaseError(f"{bundle} was built without [updates] url and root: once installed it could not "
                           "update itself again; build it with them (see README, Release)")
    repo = repo.resolve()
    if not (repo / "metadata" / "root.json").is_file():
        raise ReleaseError(f"{repo} has no update repository yet: run make release-keys first")
    shipped_root = json.loads((bundle / BAKED_IN_BUNDLE / TRUSTED_ROOT_FILE).read_text(encoding="utf-8"))
    root_keys = set(json.loads((repo / "metadata" / "root.json").read_text(encoding="utf-8"))["signed"]["keys"])
    if not set(shipped_root["signed"]["keys"]) & root_keys:
        raise ReleaseError(f"{bundle} trusts other release keys than {repo}'s: it would refuse its own updates")
    with in_folder(keys):
        repo_ = repository(repo, keys)
        repo_._load_keys_and_roles(create_keys=False)
        latest = repo_.roles.get_latest_archive()
        if latest is not None and not latest.version < parse_version(version):
            raise ReleaseError(f"version {version} is not newer than the latest release, {latest.version}")
        targets = repo_.targets_dir
        if (targets / f"{APP_NAME}-{version}.tar.gz").exists():
            raise ReleaseError(f"{targets / f'{APP_NAME}-{version}.tar.gz'} exists already")
        archive = make_archive(bundle, targets, version, compresslevel)
        released = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        repo_.roles.add_or_update_target(local_path=archive,
                                         custom={"user": {"notes": notes, "released": released},
                                                 "tufup": {KEY_REQUIRED: False}})
        if patch and latest is not None:
            source = targets / latest.path
            patch_path = archive.with_suffix("").with_suffix(SUFFIX_PATCH)
            size_and_hash = Patcher.diff_and_hash(src_path=source, dst_path=archive, patch_path=patch_path)
            repo_.roles.add_or_update_target(local_path=patch_path, custom={"user": None, "tufup": size_and_hash})
        repo_.publish_changes(private_key_dirs=[keys])
    return archive


def refresh(repo: Path, keys: Path) -> None:
    """Sign the timestamp, snapshot and targets again with new expiry dates."""
    repo = repo.resolve()
    with in_folder(keys):
        repo_ = repository(repo, keys)
        repo_._load_keys_and_roles(create_keys=False)
        for role in ("targets", "snapshot", "timestamp"):
            repo_.refresh_expiration_date(role)
        repo_.publish_changes(private_key_dirs=[keys])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="packaging/release.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("keys", "release", "refresh", "rotate"))
    parser.add_argument("--role", help="rotate: the role whose key is replaced (root, targets, snapshot, timestamp)")
    parser.add_argument("--keys", type=Path, help=f"the release keys' folder (default ${KEYS_ENV})")
    parser.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="the update repository (dist/update-repo)")
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / APP_NAME, help="the built bundle")
    parser.add_argument("--version", help="the release's version (the bundle's)")
    parser.add_argument("--notes", default="", help="what is new, shown to users before they update")
    parser.add_argument("--notes-file", type=Path, help="what is new, from a file")
    parser.add_argument("--patch", action="store_true",
                        help="also publish a binary patch from the previous release (bsdiff: see README, Release)")
    parser.add_argument("--compresslevel", type=int, default=6, choices=range(1, 10), metavar="1-9")
    args = parser.parse_args(argv)
    try:
        keys = keys_folder(args.keys)
        if args.command == "keys":
            root = create_keys(args.repo, keys)
            print(f"make release-keys: keys in {keys}; trusted root {root} (build.toml [updates] root)")
        elif args.command == "rotate":
            name = rotate(args.repo, keys, args.role or "")
            print(f"make release-rotate: {args.role} now signs with {name} ({keys}); the old key is in retired/")
        elif args.command == "refresh":
            refresh(args.repo, keys)
            print(f"make release-refresh: {args.repo} signed again")
        else:
            if not args.version:
                raise ReleaseError("say which version: make release VERSION=1.2.0")
            notes = args.notes_file.read_text(encoding="utf-8") if args.notes_file else args.notes
            archive = release(args.repo, keys, args.bundle, args.version, notes.strip(), patch=args.patch,
                              compresslevel=args.compresslevel)
            print(f"make release: {archive} ({archive.stat().st_size / 1e6:.0f} MB) signed into {args.repo}; "
                  "publish the folder as it is (metadata/ and targets/)")
    except (ReleaseError, OSError) as exc:
        print(f"make release: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
