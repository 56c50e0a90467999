"""An update repository made with the release tool (packaging/release.py, real keys and signatures), bundles to
release through it, and a static file server on loopback to publish it (as the update server would)."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from desktop.core.build_config import BAKED_FILE, BuildConfig
from desktop.core.updates import TRUSTED_ROOT_FILE

ROOT = Path(__file__).resolve().parents[2]
BAKED = Path("_internal") / "desktop" / "core"


def release_module() -> ModuleType:
    """packaging/release.py, as `make release` runs it."""
    if "creditdesk_release" in sys.modules:
        return sys.modules["creditdesk_release"]
    spec = importlib.util.spec_from_file_location("creditdesk_release", ROOT / "packaging" / "release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["creditdesk_release"] = module
    spec.loader.exec_module(module)
    return module


def restamp(bundle: Path, version: str, url: str, root: Path, **changes: object) -> None:
    """Bake another version, update URL and trusted root (and ``changes``) into a built bundle: what `make dist`
    with that build.toml would have baked. The updater ships whatever the bundle's folder holds."""
    baked = bundle / BAKED / BAKED_FILE
    config = BuildConfig.from_json(baked.read_text(encoding="utf-8")) if baked.exists() else BuildConfig()
    config = replace(config, version=version, update_url=url, **changes)  # type: ignore[arg-type]
    baked.parent.mkdir(parents=True, exist_ok=True)
    # Replaced, not rewritten in place: the bundle may be a hard-linked copy of dist/'s (cp -al).
    baked.unlink(missing_ok=True)
    baked.write_text(config.to_json(), encoding="utf-8")
    (bundle / BAKED / TRUSTED_ROOT_FILE).unlink(missing_ok=True)
    shutil.copyfile(root, bundle / BAKED / TRUSTED_ROOT_FILE)


def small_bundle(folder: Path, version: str, url: str, root: Path) -> Path:
    """A bundle's shape without PyInstaller: the executable, the baked configuration, the trusted root."""
    folder.mkdir(parents=True)
    exe = folder / "creditdesk"
    exe.write_text(f"#!/bin/sh\necho creditdesk {version}\n")
    exe.chmod(0o755)
    restamp(folder, version, url, root)
    return folder


@dataclass
class UpdateRepo:
    repo: Path
    keys: Path

    @property
    def root_json(self) -> Path:
        return self.repo / "metadata" / "root.json"

    @classmethod
    def create(cls, folder: Path) -> UpdateRepo:
        made = cls(folder / "repo", folder / "keys")
        release_module().create_keys(made.repo, made.keys)
        return made

    def release(self, bundle: Path, version: str, notes: str = "", *, compresslevel: int = 1) -> Path:
        archive: Path = release_module().release(self.repo, self.keys, bundle, version, notes, patch=False,
                                                 compresslevel=compresslevel)
        return archive

    def snapshot_metadata(self, into: Path) -> Path:
        shutil.copytree(self.repo / "metadata", into)
        return into


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class StaticServer:
    """``python -m http.server``'s handler on 127.0.0.1, in a thread of this process (the fast tests)."""

    folder: Path
    server: http.server.ThreadingHTTPServer | None = None

    def __enter__(self) -> StaticServer:
        handler = functools.partial(_QuietHandler, directory=str(self.folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


def serving(folder: Path) -> Iterator[StaticServer]:
    with StaticServer(folder) as server:
        yield server
