"""`cached_model`: the process's one cache of loaded models (Dask workers, napari, --large)."""

from nucleaizer_tf.models.cache import cached_model
from nucleaizer_tf.pipelines.dask_engine import ModelRequest, worker_segmenter


def test_the_same_request_gives_the_same_segmenter_everywhere():
    model = cached_model("default", options={})
    assert cached_model("default", options={}) is model
    assert worker_segmenter(ModelRequest("default")) is model  # the Dask workers share it
    assert cached_model("default", options={"tta": True}) is not model  # prepared for other options


def test_a_model_written_again_into_its_folder_is_loaded_again(tmp_path):
    folder = tmp_path / "model"
    cached_model("default").save(folder, round=1)
    first = cached_model(folder)
    assert cached_model(folder) is first and first.model.manifest["round"] == 1
    cached_model("default").save(folder, overwrite=True, round=2)  # adapt again into the same folder
    again = cached_model(folder)
    assert again is not first and again.model.manifest["round"] == 2
