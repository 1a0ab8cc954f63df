import os
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def faulty_plugin():
    """Path of the fault-injection plugin, registered in this process too."""
    from factorbench.impls import load_plugin

    path = str(PLUGINS / "faulty.py")
    load_plugin(path)
    return path


@pytest.fixture
def db(tmp_path):
    return tmp_path / "fb.sqlite"


@pytest.fixture(autouse=True)
def _no_db_env(monkeypatch):
    monkeypatch.delenv("FACTORBENCH_DB", raising=False)
    os.environ.setdefault("PYTHONHASHSEED", "0")
