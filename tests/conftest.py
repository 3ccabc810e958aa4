"""Shared fixtures. Tests that need `../shared/` (sample data, oracle) skip with a reason on a user's clone."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NUCLEAIZER_SHARED", REPO.parent / "shared"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared sample data, present in CI, absent in a user's clone)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def dsb_train(shared_dir) -> Path:
    """Folder with images/ (RGBA PNG) and masks/ (uint16 LZW TIFF) of the 15 DSB 2018 sample pairs."""
    return _need(shared_dir / "data" / "dsb_train")


@pytest.fixture(scope="session")
def oracle_dir(shared_dir) -> Path:
    """matterport 53afbae reference outputs for the seeded fixture weights."""
    return _need(shared_dir / "oracle")
