"""The README's embedding example runs as printed, and prints what the API's :predict says."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_the_readmes_embedding_example_runs_as_printed() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Embedding a model in an application", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python example under the heading"
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)  # the example names the repository's store folder, "models"
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(match.group(1), "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    assert out.getvalue() == "0\n"


def test_load_names_the_store_it_looked_in(tmp_path: Path) -> None:
    import sinfer
    from sinfer.errors import ModelNotFoundError, ModelNotReadyError

    # A store folder that is not there (a relative one, run from another directory, say)
    with pytest.raises(ModelNotReadyError, match=f"model store folder {tmp_path / 'nowhere'} does not exist"):
        sinfer.load("digits", store=tmp_path / "nowhere")
    # A model the store does not have
    with pytest.raises(ModelNotFoundError, match=f"model 'nope' not found in the store {ROOT / 'models'}"):
        sinfer.load("nope", store=ROOT / "models")


def test_local_and_demo_say_what_an_installed_package_lacks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a package installed without its local extra (no moto, no scikit-learn)
    import importlib.util

    from sinfer.cli.main import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("moto", "sklearn") else real(name, *a)
    )
    monkeypatch.chdir(ROOT)
    for command, missing in ((["local"], "moto"), (["demo"], "moto and sklearn")):
        # WHEN it is run, THEN one line says what is missing and how to get it (exit 2, as for
        # a port in use: the user can fix it)
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert f"needs {missing}: install the package with its local extra" in err, err
        # AND the command it suggests is the README's, which installs the checkout: sinfer is
        # not published to a package index, so `pip install 'sinfer[local]'` finds nothing (or
        # another project under that name)
        assert "pip install '.[local]'" in err, err
        assert "sinfer[local]" not in err, err
        assert "Traceback" not in err
