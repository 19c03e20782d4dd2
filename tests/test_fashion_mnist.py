"""Fashion-MNIST: found locally, downloaded for real from a local HTTP server, and every failure explained."""
from __future__ import annotations

import gzip
import http.server
import pathlib
import shutil
import threading

import pytest

import flowlib.data.fashion_mnist as F

@pytest.fixture(scope="module")
def real_files() -> pathlib.Path:
    """The real files: Debian's copy, the checkout's, or a download from the origin (F.locate says what failed)."""
    return F.locate()


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No system or checkout copy is visible: only what a test puts in place."""
    monkeypatch.setattr(F, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(F, "REPO_DIR", tmp_path / "no-repo")
    monkeypatch.delenv(F.ENV, raising=False)
    return tmp_path


class _Server:
    def __init__(self, folder: pathlib.Path, truncate: set[str] = frozenset()):
        folder_, truncate_ = folder, truncate

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = folder_ / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # a truncated response: announce everything, send half, hang up
                self.wfile.write(data[: len(data) // 2] if path.name in truncate_ else data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(folder, **kw):
        servers.append(_Server(folder, **kw))
        return servers[-1].url

    yield start
    for s in servers:
        s.close()


def test_loads_the_real_dataset(real_files, isolated):
    images, labels = F.load("test", root=real_files)
    assert images.shape == (10000, 1, 28, 28) and images.dtype.is_floating_point is False
    assert int(images.max()) == 255 and labels.shape == (10000,) and set(labels.tolist()) == set(range(10))


def test_download_from_a_local_server(real_files, isolated, serve, tmp_path):
    url = serve(real_files)
    dest = tmp_path / "downloaded"
    folder = F.locate(root=dest, url=url, progress=False)
    assert folder == dest and sorted(p.name for p in dest.iterdir()) == sorted(F.FILES)
    images, labels = F.load("train", root=dest, download=False)
    assert images.shape == (60000, 1, 28, 28) and labels[:3].tolist() == [9, 0, 0]


def test_truncated_download_is_reported_and_not_kept(real_files, isolated, serve, tmp_path):
    url = serve(real_files, truncate={"t10k-labels-idx1-ubyte.gz"})
    dest = tmp_path / "dl"
    with pytest.raises(F.DataError, match="truncated"):
        F.locate(root=dest, url=url, progress=False)
    assert not (dest / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list(dest.glob("*.part")), "a partial download was left behind"


def test_wrong_checksum_download_is_rejected(real_files, isolated, serve, tmp_path):
    bad = tmp_path / "bad-server"
    shutil.copytree(real_files, bad)
    (bad / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00" * 60008))
    url = serve(bad)
    with pytest.raises(F.DataError, match="SHA-256.*corrupt or a different file"):
        F.locate(root=tmp_path / "dl", url=url, progress=False)
    assert not (tmp_path / "dl" / "train-labels-idx1-ubyte.gz").exists()


def test_no_network_and_no_local_copy(isolated, tmp_path):
    with pytest.raises(F.DataError, match="could not download.*apt-get install dataset-fashion-mnist"):
        F.locate(root=tmp_path / "dl", url="http://127.0.0.1:9/", progress=False)


def test_corrupt_local_file_is_named(real_files, isolated, tmp_path):
    local = tmp_path / "local"
    shutil.copytree(real_files, local)
    data = (local / "t10k-images-idx3-ubyte.gz").read_bytes()
    (local / "t10k-images-idx3-ubyte.gz").write_bytes(data[:1000])
    with pytest.raises(F.DataError, match="t10k-images-idx3-ubyte.gz is not a complete gzip file"):
        F.load("test", root=local)


def test_incomplete_folder_without_download(real_files, isolated, tmp_path):
    local = tmp_path / "partial"
    local.mkdir()
    shutil.copy(real_files / "train-labels-idx1-ubyte.gz", local)
    with pytest.raises(F.DataError, match="missing"):
        F.locate(root=local, download=False)


def test_environment_variable_folder_is_used(real_files, isolated, monkeypatch):
    monkeypatch.setenv(F.ENV, str(real_files))
    assert F.locate(download=False) == real_files


def test_bad_split():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        F.load("validation")
