"""The napari plugin's model process (`nucleaizer_tf.napari.engine`), without napari or a display: tasks
run in a spawned child that keeps its models, report their steps, and come back as values or one-line
errors; the child's results equal the same call in this process."""

import numpy as np
import pytest

from nucleaizer_tf.errors import NucleaizerError
from nucleaizer_tf.napari.engine import Engine
from nucleaizer_tf.synthetic import synthetic_nuclei


def test_engine_segments_in_a_child_process_and_reports_errors_in_one_line(tmp_path):
    pytest.importorskip("tensorflow")
    from nucleaizer_tf import load_model

    sample = synthetic_nuclei((160, 200), 25, 14.0, seed=3)
    engine = Engine()
    steps = []
    try:
        labels = engine.call("segment", lambda *step: steps.append(step), lambda: False, source="default",
                             image=sample.image, options={"nucleus_size": 14})
        with pytest.raises(NucleaizerError, match="--tile -1: must be a finite number above 0"):
            engine.call("segment", print, lambda: False, source="default", image=sample.image, options={"tile": -1})
        with pytest.raises(NucleaizerError) as refused:
            engine.call("adapt", print, lambda: False, out_dir=str(tmp_path / "adapted"), settings={"preset": "quick"},
                        images={"blank": np.zeros((64, 80), np.uint8)})
        assert "\n" not in str(refused.value) and "nuclei" in str(refused.value)
        again = engine.call("segment", print, lambda: False, source="default", image=sample.image,
                            options={"nucleus_size": 14})
    finally:
        engine.close()
    np.testing.assert_array_equal(labels, load_model("default").segment(sample.image, nucleus_size=14))
    np.testing.assert_array_equal(again, labels)
    assert steps[0] == ("segmenting", 0, None) and steps[-1] == ("segmenting", len(steps) - 1, None)
    assert labels.max() > 10
