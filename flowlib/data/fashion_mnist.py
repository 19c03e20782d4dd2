"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from its original IDX ``.gz`` files, found or fetched, and verified.

Where the files are looked for, in order (the first folder that holds all four is used):
  1. the ``root`` argument, 2. the folder in the ``FLOWS_DATA`` environment variable, 3. ``data/fashion-mnist/`` in
  this checkout, 4. ``/usr/share/datasets/fashion-mnist/`` (Debian's package ``dataset-fashion-mnist``).
If none has them, they are downloaded from the origin into the first of (1), (2), (3) with a progress bar, written
to a temporary file and renamed only once complete and verified (so an interrupted download leaves nothing behind).

Verification: every file's *decompressed* bytes must have the SHA-256 below. The compressed bytes are not compared,
because distributions recompress them (Debian's ``.gz`` files differ byte-wise from the origin's while holding the
same data); a downloaded ``.gz`` is also accepted by the MD5 the dataset's authors publish for it.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import pathlib
import tempfile
import urllib.error
import urllib.request

import numpy as np
import torch

from flowlib.data import paths

ORIGIN = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEBIAN_DIR = paths.DEBIAN_FASHION_MNIST_DIR
REPO_DIR = paths.FASHION_MNIST_DIR
ENV = paths.DATA_ENV

# file -> (SHA-256 of the decompressed IDX bytes, their length, MD5 of the origin's .gz as its authors publish it)
FILES = {
    "train-images-idx3-ubyte.gz": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016,
                                   "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train-labels-idx1-ubyte.gz": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008,
                                   "25c81989df183df01b3e8a0aad5dffbe"),
    "t10k-images-idx3-ubyte.gz": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016,
                                  "bef4ecab320f06d8554ea6380940ec79"),
    "t10k-labels-idx1-ubyte.gz": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008,
                                  "bb300cfdad3c16e7a12a480ee83cd310"),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
HOW_TO_GET = (
    "To get the data: on Debian/Ubuntu run `apt-get install dataset-fashion-mnist` (files land in "
    f"{DEBIAN_DIR}); or download the four files {', '.join(FILES)} from {ORIGIN} into {REPO_DIR} or into a folder "
    f"named by the {ENV} environment variable."
)


class DataError(RuntimeError):
    """Fashion-MNIST could not be found, fetched or verified; the message says what to do."""


def candidate_dirs(root: str | os.PathLike | None = None) -> list[pathlib.Path]:
    dirs = [pathlib.Path(root)] if root else []
    if os.environ.get(ENV):
        dirs.append(pathlib.Path(os.environ[ENV]))
    return dirs + [REPO_DIR, DEBIAN_DIR]


def verify(path: pathlib.Path, name: str | None = None) -> bytes:
    """The decompressed bytes of ``path``, after checking them: raise DataError unless the file holds the right data
    (decompressed SHA-256, or the origin's published MD5 of the .gz). ``name`` is the file's Fashion-MNIST name when
    ``path`` is a temporary file."""
    name = name or path.name
    sha, size, md5 = FILES[name]
    raw = path.read_bytes()
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DataError(f"{path} is not a complete gzip file ({e}): it is truncated or corrupt. Delete it and run "
                        f"again. {HOW_TO_GET}") from None
    if hashlib.md5(raw).hexdigest() == md5:
        return data
    got = hashlib.sha256(data).hexdigest()
    if got != sha:
        raise DataError(f"{path} holds {len(data)} bytes with SHA-256 {got[:16]}..., but Fashion-MNIST's "
                        f"{name} has {size} bytes with SHA-256 {sha[:16]}...: it is corrupt or a different "
                        f"file. Delete it and run again. {HOW_TO_GET}")
    return data


def locate(root: str | os.PathLike | None = None, download: bool = True, url: str = ORIGIN,
           progress: bool = True, check: bool = True) -> pathlib.Path:
    """The folder that holds all four files (verified unless ``check=False``; ``load`` verifies what it reads),
    downloading them if no candidate folder has them."""
    for d in candidate_dirs(root):
        present = [n for n in FILES if (d / n).is_file()]
        if len(present) == len(FILES):
            if check:
                for n in FILES:
                    verify(d / n)
            return d
        if present and d != DEBIAN_DIR:
            missing = sorted(set(FILES) - set(present))
            if not download:
                raise DataError(f"{d} holds only some of Fashion-MNIST's files; missing: {missing}. {HOW_TO_GET}")
    if not download:
        raise DataError(f"Fashion-MNIST was not found in {[str(d) for d in candidate_dirs(root)]} and downloading "
                        f"is off. {HOW_TO_GET}")
    target = candidate_dirs(root)[0]
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        dest = target / name
        if dest.is_file():
            verify(dest)
            continue
        fetch(url.rstrip("/") + "/" + name, dest, progress=progress)
    return target


def fetch(url: str, dest: pathlib.Path, progress: bool = True, timeout: float = 30.0) -> None:
    """Download ``url`` to ``dest`` atomically (temporary file, then rename) and verify it."""
    from tqdm.auto import tqdm

    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = pathlib.Path(tmp)
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        bar.update(len(chunk))
        except http.client.IncompleteRead as e:
            raise DataError(f"the download of {url} stopped after {tmp.stat().st_size} of "
                            f"{total or '?'} bytes (truncated: {e!r}). Nothing was kept; run again. {HOW_TO_GET}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise DataError(f"could not download {url}: {reason}. No local copy was found either "
                            f"(looked in {[str(d) for d in candidate_dirs()]}). {HOW_TO_GET}") from None
        got = tmp.stat().st_size
        if total is not None and got != total:
            raise DataError(f"the download of {url} stopped after {got} of {total} bytes (truncated). Nothing was "
                            f"kept; run again. {HOW_TO_GET}")
        verify(tmp, dest.name)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_idx(path: pathlib.Path) -> np.ndarray:
    data = verify(path)  # decompressed once, checked, then parsed
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split: str = "train", root: str | os.PathLike | None = None, download: bool = True,
         progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 (N, 1, 28, 28) with values 0..255, and labels as int64 (N,), for ``split`` train or test."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    folder = locate(root, download=download, progress=progress, check=False)
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


if __name__ == "__main__":  # python -m flowlib.data.fashion_mnist: find or fetch the data, say where it is
    print(f"Fashion-MNIST verified in {locate()}")
