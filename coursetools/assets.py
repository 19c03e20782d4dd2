"""reveal.js and MathJax for slides and site that open with no internet, and the check that they do.

Why npm: the npm registry carries the projects' own release builds (reveal.js's ``dist/``, MathJax's ``es5/``
components with their web fonts) at exact versions, as plain files that need no build step; no PyPI package ships
current builds of both. The tarballs are fetched once with ``npm pack`` (no node_modules, no lockfile), checked
against the SHA-512 sums pinned below, and only the files that the slides and the site load are unpacked into
``<venv>/share/flows-from-scratch/web`` (``FLOWS_WEB_ASSETS`` overrides the folder). Builds copy them next to the
HTML, so the output folder can be carried to a lecture hall and opened from disk.

MathJax stays on version 3: version 4 fetches its fonts from a CDN unless each font package is installed too.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from html.parser import HTMLParser

# name -> (version, the registry's SHA-512 integrity of the tarball, the files and folders to keep)
PACKAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "reveal.js": ("5.2.1",
                  "sha512-r7//6mIM5p34hFiDMvYfXgyjXqGRta+/psd9YtytsgRlrpRzFv4RbH76TXd2qD+7ZPZEbpBDhdRhJaFgfQ7zNQ==",
                  ("LICENSE", "dist/reveal.js", "dist/reveal.css", "dist/reset.css", "dist/theme/white.css",
                   "dist/theme/fonts/source-sans-pro", "plugin/notes/notes.js")),
    "mathjax": ("3.2.2",
                "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
                # the combined TeX component, its web fonts, and what its menu may load on demand
                ("LICENSE", "es5/tex-chtml-full.js", "es5/output/chtml/fonts/woff-v2", "es5/ui", "es5/a11y",
                 "es5/sre", "es5/adaptors")),
}
MARKER = "VERSIONS.json"
# Paths inside the asset folder that the templates use.
REVEAL_DIR = "reveal.js"
MATHJAX_SCRIPT = "mathjax/es5/tex-chtml-full.js"


class AssetError(RuntimeError):
    """The web assets are missing and could not be fetched; the message says what to do."""


def asset_dir() -> pathlib.Path:
    override = os.environ.get("FLOWS_WEB_ASSETS")
    return pathlib.Path(override) if override else pathlib.Path(sys.prefix) / "share" / "flows-from-scratch" / "web"


def _wanted() -> dict[str, str]:
    return {name: version for name, (version, _, _) in PACKAGES.items()}


def assets_ready(folder: pathlib.Path | None = None) -> bool:
    folder = folder or asset_dir()
    try:
        return json.loads((folder / MARKER).read_text()) == _wanted()
    except (OSError, ValueError):
        return False


def ensure_assets(quiet: bool = False) -> pathlib.Path:
    """The asset folder, fetching the pinned tarballs first if it is missing or out of date."""
    folder = asset_dir()
    if assets_ready(folder):
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError("npm is needed once, to fetch reveal.js and MathJax for offline slides and site, and "
                         "was not found. Install Node.js and npm (Debian/Ubuntu: apt-get install npm), then run "
                         "./course setup again.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".web-", dir=folder.parent))
    try:
        for name, (version, integrity, keep) in PACKAGES.items():
            if not quiet:
                print(f"fetching {name}@{version} with npm pack", flush=True)
            tarball = _npm_pack(npm, f"{name}@{version}", staging)
            got = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
            if got != integrity:
                raise AssetError(f"{name}@{version}: the tarball's checksum {got} is not the pinned {integrity}; "
                                 f"refusing to use it.")
            _unpack(tarball, staging / name, keep)
            tarball.unlink()
        (staging / MARKER).write_text(json.dumps(_wanted(), indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if not quiet:
        print(f"web assets ready in {folder}")
    return folder


def _npm_pack(npm: str, spec: str, dest: pathlib.Path) -> pathlib.Path:
    before = set(dest.glob("*.tgz"))
    r = subprocess.run([npm, "pack", spec, "--pack-destination", str(dest), "--silent"],
                       capture_output=True, text=True, timeout=300, cwd=dest)
    new = sorted(set(dest.glob("*.tgz")) - before)
    if r.returncode != 0 or len(new) != 1:
        raise AssetError(f"'npm pack {spec}' failed (is the npm registry reachable?):\n{r.stderr.strip()[-2000:]}")
    return new[0]


def _unpack(tarball: pathlib.Path, dest: pathlib.Path, keep: tuple[str, ...]) -> None:
    """Extract the members under ``package/<keep>`` into ``dest`` (regular files only, no path escapes)."""
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith("package/"):
                continue
            rel = member.name[len("package/"):]
            if ".." in pathlib.PurePosixPath(rel).parts:
                continue
            if not any(rel == k or rel.startswith(k + "/") for k in keep):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    missing = [k for k in keep if not (dest / k).exists()]
    if missing:
        raise AssetError(f"{tarball.name} lacks {missing}; was the pinned version changed without the file list?")


def copy_assets(dest: pathlib.Path) -> pathlib.Path:
    """Copy reveal.js and MathJax into ``dest`` (fetching them first if needed); returns ``dest``."""
    src = ensure_assets(quiet=True)
    shutil.copytree(src, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(MARKER))
    return dest


# ---- the offline check ---------------------------------------------------------------------------------------------
_REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://, https://, //host (protocol-relative)
_CSS_URL = re.compile(r"""@import\s+(?:url\()?\s*['"]?([^'")\s;]+)|url\(\s*['"]?([^'")\s]+)""", re.I)
# <link rel=...> values that make the browser fetch the href
_LOADING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "shortcut", "apple-touch-icon",
                 "manifest", "import"}


def is_remote(url: str) -> bool:
    return bool(_REMOTE.match(url)) and not url.strip().lower().startswith(("file:", "data:"))


def css_remote_urls(css: str) -> list[str]:
    """URLs that a style sheet would fetch from the network (@import and url(...))."""
    return [u for m in _CSS_URL.finditer(css) for u in m.groups() if u and is_remote(u)]


class _Loads(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.remote: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        urls = []
        if tag in ("script", "img", "iframe", "embed", "source", "audio", "video", "track", "input"):
            urls.append(a.get("src"))
        if tag == "link" and set((a.get("rel") or "").lower().split()) & _LOADING_RELS:
            urls.append(a.get("href"))
        if tag == "object":
            urls.append(a.get("data"))
        self.remote += [u for u in urls if u and is_remote(u)]
        if a.get("style"):
            self.remote += css_remote_urls(a["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.remote += css_remote_urls(data)


def remote_loads(html: str) -> list[str]:
    """Every URL on the network that a page would load: scripts, style sheets (also @import and url() inside
    <style> and style=""), images, frames. Links a reader may follow (<a href>) are not loads and are allowed."""
    parser = _Loads()
    parser.feed(html)
    return parser.remote


def check_offline(folder: pathlib.Path) -> dict[str, list[str]]:
    """{file: [remote URLs]} for every .html and .css file under ``folder`` that would load from the network."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".html":
            urls = remote_loads(path.read_text(errors="replace"))
        elif path.suffix == ".css":
            urls = css_remote_urls(path.read_text(errors="replace"))
        else:
            continue
        if urls:
            found[str(path.relative_to(folder))] = sorted(set(urls))
    return found


def assert_offline(folder: pathlib.Path) -> None:
    """Raise if anything under ``folder`` would load a script, style sheet, font or image from the network."""
    found = check_offline(folder)
    if found:
        lines = [f"  {f}: {', '.join(u[:100] for u in urls[:5])}" for f, urls in list(found.items())[:20]]
        raise AssetError("these files would load from the network, so they would not work offline:\n"
                         + "\n".join(lines))
