"""The judge shipped in the package: loaded with no checkpoint given, it grades right above wrong."""

from __future__ import annotations

import configparser
import json
import math

import pytest

from conftest import REPO, write_jsonl
from phudge_lightning.judge import Judge, default_judge_path

SKY = "Explain why the sky looks blue on a clear day."
RIGHT = ("Sunlight is made of many colours. Air molecules scatter short wavelengths (blue) much more than long "
         "ones (red), an effect called Rayleigh scattering, so blue light reaches our eyes from every part of the sky.")
WRONG = "Because the sky reflects the colour of the oceans."


def package_data_globs(package: str) -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return parser["options.package_data"][package].replace(",", " ").split()


def test_the_shipped_judge_is_a_small_export_listed_as_package_data():
    folder = default_judge_path()
    files = {f for f in folder.rglob("*") if f.is_file()}
    size = sum(f.stat().st_size for f in files)
    assert size < 10 * 2**20, f"the shipped judge is {size / 2**20:.1f} MB"
    exports = [folder] if (folder / "judge.json").exists() else sorted(folder.glob("member-*"))  # one judge, or an ensemble
    assert exports and all((e / "judge.json").exists() and (e / "trained.safetensors").exists() for e in exports)
    assert {json.loads((e / "judge.json").read_text())["hparams"]["backbone"] for e in exports} == {"minilm-l6"}
    # every file of it is listed as package data (the built wheel is checked below)
    package = REPO / "phudge_lightning"
    installed = {f for pattern in package_data_globs("phudge_lightning") for f in package.glob(pattern) if f.is_file()}
    assert files <= installed, sorted(str(f.relative_to(package)) for f in files - installed)


@pytest.mark.slow
def test_the_built_wheel_carries_every_file_of_the_shipped_judge_and_setuptools_does_not_warn(tmp_path):
    """The wheel pip builds from a copy of the project holds the shipped judge file for file, and
    the build says nothing of data folders taken for packages (setuptools' "Package would be
    ignored" warning, one screen per folder, seen by everyone who installs the project)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("phudge_lightning", "heads", "losses", "datamodules"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
                           "-v", "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "would be ignored" not in done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("phudge_lightning-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"phudge_lightning/{f.relative_to(REPO / 'phudge_lightning').as_posix()}"
               for f in default_judge_path().rglob("*") if f.is_file() and "__pycache__" not in f.parts}
    assert shipped and shipped <= names, sorted(shipped - names)
    assert "datamodules/data/demo.jsonl" in names
    # The editable build scripts/setup.sh makes: a plain .pth to the project, and no notice.
    editable = subprocess.run([sys.executable, "-c", "import setuptools.build_meta as b; print(b.build_editable('edist'))"],
                              cwd=source, capture_output=True, text=True, timeout=300)
    assert editable.returncode == 0, editable.stderr[-2000:]
    assert "Warning" not in editable.stderr and "Editable installation" not in editable.stderr, editable.stderr[-2000:]
    (pth,) = [n for n in zipfile.ZipFile(source / "edist" / editable.stdout.split()[-1]).namelist() if n.endswith(".pth")]
    assert pth.startswith("__editable__")
    assert "phudge_lightning/judge.py" in names and "heads/__init__.py" in names


@pytest.mark.embedded("minilm-l6")
def test_judge_load_default_grades_with_no_checkpoint(tmp_path):
    judge = Judge.load("default")
    right, wrong = judge.grade_many([{"instruction": SKY, "response": RIGHT}, {"instruction": SKY, "response": WRONG}])
    assert math.isfinite(right.score) and math.isfinite(wrong.score)
    assert right.score > wrong.score
    # phudge grade with no --checkpoint uses it too
    from phudge_lightning.grade import command as grading

    out = tmp_path / "out.jsonl"
    rows = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "instruction": SKY, "response": RIGHT}])
    assert grading.main(["--input", str(rows), "--output", str(out)]) == 0
    (graded,) = map(json.loads, out.read_text().splitlines())
    assert graded["score"] == pytest.approx(right.score, abs=1e-4)
