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


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Networks converted for OpenVINO are cached in a folder of the test session, never in the user's home."""
    os.environ["NUCLEAIZER_TF_CACHE"] = str(tmp_path_factory.mktemp("cache"))


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


@pytest.fixture(scope="session")
def legacy_fixture(oracle_dir, tmp_path_factory):
    """The oracle's seed-1 legacy weight files, generated once per test session (2 x 256 MB in tmp).

    Returns a namespace: `gen` (the generator module: `weight_array(name, shape)`), `manifest`,
    `plain` (weights-only layout) and `wrapped` (under `model_weights`).
    """
    import importlib.util
    import sys
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("gen_fixture_weights", oracle_dir / "gen_fixture_weights.py")
    gen = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_fixture_weights", gen)
    spec.loader.exec_module(gen)
    folder = tmp_path_factory.mktemp("legacy_fixture")
    manifest = gen.load_manifest(str(oracle_dir / "weights_manifest.json"))
    plain, wrapped = folder / "fixture.h5", folder / "fixture_wrapped.h5"
    gen.write_fixture(str(plain), manifest)
    gen.write_fixture(str(wrapped), manifest, wrapped=True)
    return SimpleNamespace(gen=gen, manifest=manifest, plain=plain, wrapped=wrapped)


@pytest.fixture(scope="session")
def dask_cluster():
    """One local Dask cluster of two worker processes for the whole run (the Dask engine and the
    large-image tests reach it by its scheduler address, as `predict --scheduler` does); starting
    one costs a TensorFlow import per worker."""
    pytest.importorskip("distributed", reason="needs dask[distributed] (the test extra)")
    from nucleaizer_tf.pipelines.dask_engine import dask_client

    with dask_client(workers=2) as client:
        yield client
