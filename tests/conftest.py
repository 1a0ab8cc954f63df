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


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CuPy and a CUDA device: skip them, with the reason,
    where either is missing (the probe imports CuPy only if a ``gpu`` test was
    collected and CuPy is installed)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    from factorbench.impls import _gpu_available

    ok, reason = _gpu_available()
    if ok:
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU and CuPy ({reason})")
    for item in gpu_items:
        item.add_marker(skip)
