"""``make dist``: the standalone app (PyInstaller, one folder) and its Debian package, from one build configuration.

    python packaging/build_app.py [--config packaging/build.toml] [--all-qt] [--force]

Writes ``dist/creditdesk/`` (the bundle; its executable is ``creditdesk``), ``dist/creditdesk_<version>_<arch>.deb``
(on Windows ``dist/creditdesk-<version>-windows.zip``, on macOS ``dist/<name>.app`` and a ``.dmg``: not run here)
and ``dist/creditdesk.modules.txt`` (every Python module in the bundle, for checking). A build whose inputs (the
sources, the lock file, the configuration, this folder) have not changed since the last one is not made again: the
hash of the inputs is kept in ``dist/creditdesk.source-hash``. Two builds at once (test workers) take turns.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desktop.core.build_config import BuildConfig, BuildConfigError, read_build_toml  # noqa: E402
from desktop.core.updates import TRUSTED_ROOT_FILE  # noqa: E402

PACKAGE = "creditdesk"  # the Debian package, the executable and the process
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)  # hicolor's usual sizes
HASHED = ("backend", "desktop", "resources", "packaging")
HASHED_FILES = ("pyproject.toml", "requirements/lock.txt")
# Test and build tools, which must not be in the bundle (checked on its module list and its files).
FORBIDDEN = ("pytest", "_pytest", "pytestqt", "xdist", "hypothesis", "schemathesis", "selenium", "mypy", "ruff",
             "importlinter", "mutmut", "coverage", "PyInstaller", "pip", "setuptools")
# System libraries of the desktop (X11, xcb, Wayland, OpenGL, fonts, GLib, D-Bus, GTK and what it draws with):
# taken from the system, which the .deb depends on, rather than copied from the build machine, where a copy would
# clash with the session's own (fontconfig's configuration, GLib's modules, the GL driver).
SYSTEM_LIBRARIES = (
    "libX", "libxcb", "libxkbcommon", "libwayland", "libGL", "libEGL", "libOpenGL", "libGLX", "libgbm", "libdrm",
    "libfontconfig", "libfreetype", "libexpat", "libpng16", "libharfbuzz", "libgraphite2", "libbrotli", "libbz2",
    "libglib-2", "libgio-2", "libgobject-2", "libgmodule-2", "libgthread-2", "libffi.so.7", "libpcre", "libmount",
    "libblkid", "libselinux", "libdbus-1", "libsystemd", "libgcrypt", "libgpg-error", "liblz4", "libcap.so",
    "libgtk-3", "libgdk-3", "libgdk_pixbuf", "libatk", "libatspi", "libcairo", "libpango", "libepoxy",
    "libfribidi", "libthai", "libdatrie", "libpixman", "libjpeg", "libbsd", "libmd.so", "libXau", "libXdmcp",
)
# A plugin whose libraries the package recommends rather than depends on: Qt does without it (a theme).
OPTIONAL_PLUGINS = ("platformthemes/libqgtk3.so",)
DESKTOP_FILE = """[Desktop Entry]
Type=Application
Name={name}
Comment=Buy prepaid credits and keep track of them
Exec=creditdesk
Icon=creditdesk
Terminal=false
Categories=Office;Finance;
StartupWMClass=creditdesk
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="packaging/build_app.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "packaging" / "build.toml",
                        help="the build configuration (default packaging/build.toml)")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the bundle and .deb go (dist/)")
    parser.add_argument("--all-qt", action="store_true",
                        help="keep every Qt file PyInstaller's hooks collect (to measure what the exclusions save)")
    parser.add_argument("--force", action="store_true", help="build even when nothing changed")
    args = parser.parse_args(argv)
    try:
        config = read_build_toml(args.config)
    except BuildConfigError as exc:
        print(f"make dist: {exc}", file=sys.stderr)
        return 2
    icon = (args.config.parent / config.icon).resolve()
    if not icon.is_file():
        print(f"make dist: {args.config}: app.icon {config.icon!r} is not a file ({icon})", file=sys.stderr)
        return 2
    trusted_root = (args.config.parent / config.update_root).resolve() if config.update_root else None
    if trusted_root is not None and not trusted_root.is_file():
        print(f"make dist: {args.config}: updates.root {config.update_root!r} is not a file ({trusted_root})",
              file=sys.stderr)
        return 2
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    config = BuildConfig(**{**config.__dict__, "version": version})
    dist = args.dist.resolve()
    work = ROOT / "build" / "dist"
    work.mkdir(parents=True, exist_ok=True)
    dist.mkdir(parents=True, exist_ok=True)
    digest = source_hash(config, icon, all_qt=args.all_qt, extra=[trusted_root] if trusted_root else [])
    stamp = dist / f"{PACKAGE}.source-hash"
    with locked(work / "build.lock"):
        deb = dist / package_name(version)
        if not args.force and stamp.is_file() and stamp.read_text().strip() == digest and deb.is_file():
            print(f"make dist: up to date ({dist / PACKAGE}, {deb.name})")
            return 0
        stamp.unlink(missing_ok=True)
        started = time.monotonic()
        icons = render_icons(icon, work / "icons")
        baked = work / "build-config.json"
        baked.write_text(config.to_json(), encoding="utf-8")
        root_copy = work / TRUSTED_ROOT_FILE
        root_copy.unlink(missing_ok=True)
        if trusted_root is not None:
            shutil.copyfile(trusted_root, root_copy)
        bundle = run_pyinstaller(baked, icons, work, dist, all_qt=args.all_qt,
                                 trusted_root=root_copy if trusted_root else None)
        built = time.monotonic()
        check_bundle(bundle, work / "modules.txt")
        shutil.copyfile(work / "modules.txt", dist / f"{PACKAGE}.modules.txt")
        for old in dist.glob(f"{PACKAGE}_*.deb"):
            old.unlink()
        package(bundle, icons, icon, config, work, deb)
        stamp.write_text(digest + "\n")
        print(f"make dist: {bundle} ({megabytes(folder_size(bundle))}), {deb} ({megabytes(deb.stat().st_size)}); "
              f"PyInstaller {built - started:.0f} s, package {time.monotonic() - built:.0f} s")
    return 0


def source_hash(config: BuildConfig, icon: Path, *, all_qt: bool, extra: list[Path] | None = None) -> str:
    """What the build depends on: the sources, the pins, the configuration, the icon and the trusted root."""
    digest = hashlib.sha256(config.to_json().encode())
    digest.update(f"all_qt={all_qt}\n".encode())
    files = [ROOT / name for name in HASHED_FILES] + [icon] + list(extra or [])
    for folder in HASHED:
        files += [path for path in (ROOT / folder).rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    for path in sorted(files):
        digest.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def render_icons(source: Path, out: Path) -> Path:
    """``out/hicolor/<n>x<n>/apps/creditdesk.png`` at each size (and the SVG as scalable), and ``out/creditdesk.png``
    (256 px) for the app's windows; drawn with Qt from the SVG, or scaled smoothly from a PNG."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    shutil.rmtree(out, ignore_errors=True)

    def draw(size: int) -> QImage:
        if source.suffix.lower() == ".svg":
            renderer = QSvgRenderer(str(source))
            if not renderer.isValid():
                raise SystemExit(f"make dist: the icon {source} is not an SVG Qt can draw")
            image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
            image.fill(Qt.GlobalColor.transparent)
            painter = QPainter(image)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            renderer.render(painter, QRectF(0, 0, size, size))
            painter.end()
            return image
        image = QImage(str(source))
        if image.isNull():
            raise SystemExit(f"make dist: the icon {source} is not an image Qt can read")
        return image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)

    for size in ICON_SIZES:
        target = out / "hicolor" / f"{size}x{size}" / "apps" / f"{PACKAGE}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not draw(size).save(str(target)):  # PNG, from the name
            raise SystemExit(f"make dist: could not write {target}")
    if source.suffix.lower() == ".svg":
        scalable = out / "hicolor" / "scalable" / "apps" / f"{PACKAGE}.svg"
        scalable.parent.mkdir(parents=True)
        shutil.copyfile(source, scalable)
    shutil.copyfile(out / "hicolor" / "256x256" / "apps" / f"{PACKAGE}.png", out / f"{PACKAGE}.png")
    return out


def run_pyinstaller(baked: Path, icons: Path, work: Path, dist: Path, *, all_qt: bool,
                    trusted_root: Path | None = None) -> Path:
    staging = work / "pyinstaller-dist"
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
               "--distpath", str(staging), "--workpath", str(work / "pyinstaller"),
               str(ROOT / "packaging" / "creditdesk.spec"), "--",
               "--baked", str(baked), "--icons", str(icons), "--modules", str(work / "modules.txt")]
    if all_qt:
        command.append("--all-qt")
    if trusted_root is not None:
        command += ["--trusted-root", str(trusted_root)]
    subprocess.run(command, check=True, cwd=ROOT)  # noqa: S603 (our own interpreter)
    bundle = dist / PACKAGE
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.move(staging / PACKAGE, bundle)
    return bundle


def check_bundle(bundle: Path, modules: Path) -> None:
    """No test or build tool in the bundle: neither among its modules nor among its files."""
    found = sorted({name for name in modules.read_text().split() if name.split(".")[0] in FORBIDDEN})
    found += sorted(str(path.relative_to(bundle)) for path in (bundle / "_internal").iterdir()
                    if path.name.split(".")[0].split("-")[0] in FORBIDDEN)
    if found:
        raise SystemExit(f"make dist: the bundle holds test or build tools: {', '.join(found[:20])}")


def deb_name(version: str) -> str:
    return f"{PACKAGE}_{version}_{architecture()}.deb"


# The platforms' packages. Linux is built and tested here; Windows and macOS are written from PyInstaller's
# documentation and wait for their CI runners (README, Release): PyInstaller builds on each platform for itself.
def package_name(version: str) -> str:
    if sys.platform == "win32":
        return f"{PACKAGE}-{version}-windows.zip"
    if sys.platform == "darwin":
        return f"{PACKAGE}-{version}-macos.dmg"
    return deb_name(version)


def package(bundle: Path, icons: Path, icon_source: Path, config: BuildConfig, work: Path, out: Path) -> None:
    """The platform's package of the bundle: a .deb on Linux, a zip on Windows (an Inno Setup installer is the
    next step), a .dmg of the .app on macOS."""
    if sys.platform == "win32":  # not run here
        shutil.make_archive(str(out.with_suffix("")), "zip", root_dir=bundle.parent, base_dir=bundle.name)
    elif sys.platform == "darwin":  # not run here: the spec's BUNDLE made <name>.app beside PyInstaller's folder
        app = work / "pyinstaller-dist" / f"{config.app_name}.app"
        subprocess.run(["hdiutil", "create", "-volname", config.app_name, "-srcfolder", str(app),  # noqa: S603, S607
                        "-ov", "-format", "UDZO", str(out)], check=True)
    else:
        build_deb(bundle, icons, icon_source, config, work / "deb", out)


def architecture() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,  # noqa: S607
                          check=True).stdout.strip()


def build_deb(bundle: Path, icons: Path, icon_source: Path, config: BuildConfig, staging: Path, deb: Path) -> None:
    """The bundle under /opt/creditdesk, /usr/bin/creditdesk, the .desktop file and the hicolor icons."""
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(bundle, staging / "opt" / PACKAGE, symlinks=True)
    (staging / "usr" / "bin").mkdir(parents=True)
    (staging / "usr" / "bin" / PACKAGE).symlink_to(f"/opt/{PACKAGE}/{PACKAGE}")
    applications = staging / "usr" / "share" / "applications"
    applications.mkdir(parents=True)
    (applications / f"{PACKAGE}.desktop").write_text(DESKTOP_FILE.format(name=config.app_name), encoding="utf-8")
    shutil.copytree(icons / "hicolor", staging / "usr" / "share" / "icons" / "hicolor")
    depends, recommends = system_dependencies(bundle)
    size_kib = (folder_size(staging) + 1023) // 1024
    control = staging / "DEBIAN" / "control"
    control.parent.mkdir()
    control.write_text(
        f"Package: {PACKAGE}\n"
        f"Version: {config.version}\n"
        f"Architecture: {architecture()}\n"
        "Maintainer: Creditdesk <support@creditdesk.invalid>\n"
        f"Installed-Size: {size_kib}\n"
        f"Depends: {', '.join(depends)}\n"
        + (f"Recommends: {', '.join(recommends)}\n" if recommends else "")
        + "Section: misc\nPriority: optional\n"
        f"Description: {config.app_name}: buy prepaid credits and keep track of them\n"
        " A desktop app that sells prepaid credits through Stripe Checkout and shows the balance,\n"
        f" the history and the spending of an account (update channel {config.update_channel}).\n",
        encoding="utf-8")
    for path in staging.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", str(staging), str(deb)],  # noqa: S603, S607
                   check=True, stdout=subprocess.DEVNULL)


def system_dependencies(bundle: Path) -> tuple[list[str], list[str]]:
    """The Debian packages holding the system libraries the bundle's programs and libraries load (ldd on each, as
    dpkg-shlibdeps would): those of the optional plugins are recommended, the rest depended on."""
    needed: dict[Path, bool] = {}  # library -> whether something required loads it
    missing: set[str] = set()
    for path in sorted(bundle.rglob("*")):
        if not path.is_file() or path.is_symlink() or not _is_elf(path):
            continue
        optional = any(str(path).endswith(plugin) for plugin in OPTIONAL_PLUGINS)
        # As the bootloader runs it: the bundle's own libraries first.
        result = subprocess.run(["ldd", str(path)], capture_output=True, text=True,  # noqa: S603, S607
                                env={**os.environ, "LD_LIBRARY_PATH": str(bundle / "_internal")})
        for line in result.stdout.splitlines():
            if "=>" not in line:
                continue
            target = line.split("=>", 1)[1].split("(")[0].strip()
            if target == "not found" and not optional:
                missing.add(f"{line.split('=>')[0].strip()} (for {path.relative_to(bundle)})")
            if not target or target == "not found" or Path(target).resolve().is_relative_to(bundle.resolve()):
                continue
            needed[Path(target)] = needed.get(Path(target), False) or not optional
    if missing:  # the package would not name what provides them
        raise SystemExit("make dist: this machine lacks libraries the bundle loads, so the package cannot depend on "
                         f"them; install them first: {', '.join(sorted(missing))}")
    packages: dict[str, bool] = {}
    for library, required in needed.items():
        for package in _owner(library):
            packages[package] = packages.get(package, False) or required
    depends = sorted(name for name, required in packages.items() if required)
    recommends = sorted(name for name, required in packages.items() if not required)
    return depends, recommends


def _owner(library: Path) -> list[str]:
    """The package(s) that installed ``library`` (looked up under /lib and /usr/lib: Debian merged them)."""
    candidates = {str(library), str(library.resolve())}
    for candidate in list(candidates):
        if candidate.startswith("/lib/"):
            candidates.add("/usr" + candidate)
        elif candidate.startswith("/usr/lib/"):
            candidates.add(candidate.removeprefix("/usr"))
    for candidate in sorted(candidates):
        result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)  # noqa: S603, S607
        if result.returncode == 0:
            return sorted({entry.split(":")[0].strip() for line in result.stdout.splitlines()
                           if not line.startswith("diversion ") for entry in line.split(": ", 1)[0].split(", ")})
    raise SystemExit(f"make dist: no Debian package holds {library}, which the bundle loads")


def _is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.0f} MB"


if __name__ == "__main__":
    raise SystemExit(main())
