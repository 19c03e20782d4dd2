"""Shared pieces of the real-browser tests: Debian's Chromium driven by Playwright, a private JupyterLab server,
and the folder where screenshots go.

Chromium is not optional: without it the browser tests fail and say how to install it (they never skip, so a CI
machine without a browser cannot pass by accident). Playwright's own browser download is never used.
"""
from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = os.environ.get("FLOWS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
                 "--disable-extensions", "--mute-audio"]
VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="session")
def artifacts() -> pathlib.Path:
    """artifacts/browser/ (gitignored): screenshots and logs that show what the browser saw."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def pytest_terminal_summary(terminalreporter):
    if ARTIFACTS.is_dir() and any(ARTIFACTS.glob("*.png")):
        terminalreporter.write_line(f"browser tests: screenshots and logs in {ARTIFACTS}")


@pytest.fixture(scope="session")
def chromium_context(tmp_path_factory):
    """A headless Chromium (Debian's) with a fresh profile, through Playwright."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}, and it is not there. Install it with "
                    f"'apt-get install chromium' (./course setup does that when run as root), or point "
                    f"FLOWS_CHROMIUM at a Chromium binary.", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need the Python package playwright: run ./course setup "
                    "(it installs the 'test' extra of pyproject.toml).", pytrace=False)
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT)
        try:
            yield context
        finally:
            context.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLabServer:
    """``jupyter lab`` on 127.0.0.1 with a random token, serving a private copy of some lessons.

    Everything JupyterLab would read from the user (settings, workspaces, config, kernels, IPython profile) points
    into a temporary folder, so a user's state cannot leak in. The kernels run in fast mode (FLOWS_FAST=1).
    """

    def __init__(self, home: pathlib.Path, lessons: list[pathlib.Path], log: pathlib.Path):
        self.home, self.log_path = home, log
        self.root = home / "notebooks"  # a copy: JupyterLab saves outputs into what it opens
        self.root.mkdir(parents=True)
        for path in lessons:
            shutil.copy(path, self.root / path.name)
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._write_settings(home / "lab-settings")
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("MPLBACKEND", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTERLAB_DIR")}
        self.env.update(FLOWS_FAST="1", PYTHONUNBUFFERED="1",
                        JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
                        JUPYTERLAB_WORKSPACES_DIR=str(home / "lab-workspaces"),
                        JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
                        JUPYTER_DATA_DIR=str(home / "jupyter-data"),
                        JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"),
                        IPYTHONDIR=str(home / "ipython"))
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def _write_settings(folder: pathlib.Path) -> None:
        settings = {
            # no "would you like news?" toast over the notebook, no update check (and no network)
            "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                '{"fetchNews": "false", "checkForUpdates": false}',
            # render every cell, also those scrolled out of view, so that all outputs can be inspected
            "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}',
        }
        for name, text in settings.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def command(self) -> list[str]:
        jupyter = pathlib.Path(sys.executable).with_name("jupyter")
        cmd = [str(jupyter), "lab"] if jupyter.exists() else [sys.executable, "-m", "jupyterlab"]
        cmd += ["--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True",
                "--ServerApp.open_browser=False"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        return cmd

    def start(self, timeout: float = 90.0) -> None:
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.command(), env=self.env, cwd=self.home, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with code {self.proc.returncode}; its log:\n"
                                   f"{self.log_path.read_text()[-3000:]}")
            try:
                self.api("GET", "/api/status")
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s; its log:\n"
                           f"{self.log_path.read_text()[-3000:]}")

    def api(self, method: str, path: str) -> bytes:
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def shutdown_kernels(self) -> None:
        import json

        try:
            for session in json.loads(self.api("GET", "/api/sessions")):
                self.api("DELETE", f"/api/sessions/{session['id']}")
        except OSError:
            pass

    def stop(self) -> None:
        if self.proc is None:
            return
        self.shutdown_kernels()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()
