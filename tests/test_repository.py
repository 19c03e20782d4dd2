"""Repository hygiene: clean notebooks, environment files in step, and the setup script's failure messages."""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_lessons():
    assert any(p.name.startswith("01_") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} cell {i} has stored outputs: clear them"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_reads_as_a_lesson(path):
    text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                     if c["cell_type"] == "markdown").lower()
    for heading in ("learning goals", "prerequisites", "estimated time", "exercise", "summary"):
        assert heading in text, f"{path.name} has no '{heading}' section"


def _requirements_pyproject() -> dict[str, str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return dict(_split(r) for r in reqs)


def _requirements_conda() -> dict[str, str]:
    text = (ROOT / "environment.yml").read_text()
    lines = text[text.index("\ndependencies:"):].splitlines()
    out = {}
    for line in lines:
        m = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+(?:[<>=!~].*)?)\s*$", line)
        if m and not m.group(1).startswith("--"):
            name, spec = _split(m.group(1))
            if name not in ("python", "pip"):
                out[name] = spec
    return out


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", req.strip())
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_and_pyproject_list_the_same_packages():
    pip, conda = _requirements_pyproject(), _requirements_conda()
    assert set(pip) == set(conda), f"only in pyproject: {set(pip) - set(conda)}; only in environment.yml: " \
                                   f"{set(conda) - set(pip)}"
    for name in pip:
        if name == "torch":  # conda pins the CPU wheel that pyproject's range admits
            continue
        assert pip[name] == conda[name], f"{name}: pyproject says {pip[name]!r}, environment.yml {conda[name]!r}"


def _course(*args, **env):
    return subprocess.run([str(ROOT / "course"), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_course_script_refuses_an_old_python(tmp_path):
    fake = tmp_path / "python3.8"
    fake.write_text("#!/bin/sh\nif [ \"$1\" = -c ]; then case \"$2\" in *platform*) echo 3.8.10;; *) exit 1;; esac; fi\n")
    fake.chmod(0o755)
    r = _course("setup", FLOWS_PYTHON=str(fake))
    assert r.returncode != 0
    assert "3.8.10" in r.stderr and "needs 3.10 or newer" in r.stderr and "FLOWS_PYTHON" in r.stderr


def test_course_script_names_a_missing_python():
    r = _course("setup", FLOWS_PYTHON="no-such-python-3")
    assert r.returncode != 0 and "no 'no-such-python-3' on PATH" in r.stderr


def test_course_script_rejects_unknown_commands():
    r = _course("dance")
    assert r.returncode != 0 and "unknown command 'dance'" in r.stderr and "./course lab" in r.stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_and_its_text_twin_are_in_sync(path):
    # Each lesson's source is reviewable as text: notebooks/NAME.py (jupytext py:percent) holds the same cells as
    # notebooks/NAME.ipynb (the file the tests execute).
    jupytext = pytest.importorskip("jupytext")
    twin = path.with_suffix(".py")
    fix = f"regenerate it with: jupytext --to py:percent {path.relative_to(ROOT)}"
    assert twin.exists(), f"{twin.name} is missing; {fix}"
    ipynb = json.loads(path.read_text())["cells"]
    text = jupytext.reads(twin.read_text(), fmt="py:percent")["cells"]
    assert len(text) == len(ipynb), f"{twin.name} has {len(text)} cells, {path.name} {len(ipynb)}; {fix}"
    for i, (a, b) in enumerate(zip(ipynb, text)):
        assert a["cell_type"] == b["cell_type"] and "".join(a["source"]).rstrip() == b["source"].rstrip(), \
            f"cell {i} of {twin.name} differs from {path.name}; {fix}"


# ---- which PyTorch the set-up installs (the logic only: nothing is downloaded) --------------------------------------
def test_setup_chooses_the_cpu_wheel_without_an_nvidia_gpu_and_falls_back_to_the_mirror():
    from coursetools.torch_choice import CPU_INDEX, TORCH_VERSION, choose_torch

    pinned = f"torch=={TORCH_VERSION}"
    linux = dict(flows_torch=None, system="Linux")
    assert choose_torch(**linux, has_nvidia_gpu=False, cpu_index_reachable=True) == [
        [pinned, "--index-url", CPU_INDEX], [pinned]]  # CPU wheel first, the plain pin if pip fails with it
    assert choose_torch(**linux, has_nvidia_gpu=False, cpu_index_reachable=False) == [[pinned]]  # mirror only
    assert choose_torch(**linux, has_nvidia_gpu=True, cpu_index_reachable=True) == [[pinned]]  # PyPI's CUDA build
    for system in ("Darwin", "Windows"):
        assert choose_torch(flows_torch=None, system=system, has_nvidia_gpu=False, cpu_index_reachable=True) == [
            [pinned]]
    cuda = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
    for gpu in (False, True):  # FLOWS_TORCH wins, whatever the machine
        assert choose_torch(flows_torch=cuda, system="Linux", has_nvidia_gpu=gpu, cpu_index_reachable=True) == [
            cuda.split()]
    assert choose_torch(flows_torch="  ", system="Linux", has_nvidia_gpu=False, cpu_index_reachable=False) == [
        [pinned]]


def test_setup_script_prints_its_choice_with_the_system_python(tmp_path):
    script = ROOT / "coursetools" / "torch_choice.py"
    env = {k: v for k, v in os.environ.items() if k != "FLOWS_TORCH"}
    r = subprocess.run(["python3", str(script)], capture_output=True, text=True, timeout=60,
                       env={**env, "FLOWS_TORCH": "torch==2.13.0 --index-url https://example.org/whl"})
    assert r.returncode == 0 and r.stdout.splitlines() == ["torch==2.13.0 --index-url https://example.org/whl"]
    r = subprocess.run(["python3", str(script)], capture_output=True, text=True, timeout=60, env=env)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines and lines[-1].startswith("torch=="), r.stdout + r.stderr
    if not os.path.exists("/proc/driver/nvidia/version"):  # no NVIDIA driver here: never the CUDA build
        assert all("cu1" not in line for line in lines) and len(lines) in (1, 2), lines
        assert len(lines) == 1 or "--index-url https://download.pytorch.org/whl/cpu" in lines[0], lines


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_lesson_starts_with_the_one_set_up_line(path):
    # seed, threads, device and fast mode are set in one place (flowlib.setup), in the lesson's first code cell
    first = next("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert re.search(r"^device = (flowlib|fl)\.setup\(seed=\d+\)", first, re.M), \
        f"{path.name}: the first code cell should call `device = flowlib.setup(seed=0)` (the lessons' convention)"
    assert "set_num_threads" not in first and "seed_everything" not in first, \
        f"{path.name}: flowlib.setup already seeds and sets the threads"
