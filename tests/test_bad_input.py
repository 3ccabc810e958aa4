"""Bad input and interrupted runs: every case ends in one clear line naming the file, never a
traceback; the good images of the same folder are still written; nothing half-written or temporary
stays behind; a rerun (`--skip-existing`) after SIGINT or SIGKILL gives byte-identical outputs.

Uses the shipped default model on small generated images (a 64² image segments in well under a second).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from nucleaizer_tf.cli.main import app
from nucleaizer_tf.io.write import is_temporary_name
from nucleaizer_tf.pipelines.stages import ItemCache

runner = CliRunner()


def nuclei(shape=(64, 64), dtype=np.uint16, seed=0) -> np.ndarray:
    """A grey image with a few bright discs on noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.integers(0, 200, shape).astype(np.float64)
    for _ in range(max(3, shape[0] * shape[1] // 1200)):
        cy, cx = rng.integers(8, max(9, shape[0] - 8)), rng.integers(8, max(9, shape[1] - 8))
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 49] += 3000
    top = 255 if dtype == np.uint8 else 4000
    return np.clip(image * top / 4000, 0, top).astype(dtype)


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def leftovers(folder: Path) -> list[Path]:
    """Temporaries of atomic_path and write probes anywhere below `folder`."""
    return [p for p in folder.rglob("*") if is_temporary_name(p.name) or p.name.startswith(".nucleaizer-probe")]


def assert_one_line(stderr: str, *needles) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


# ----------------------------------------------------------------------------- per-image failures


def _bad_zero(folder):
    (folder / "bad.png").write_bytes(b"")
    return folder / "bad.png", "empty file"


def _bad_truncated(folder):
    tifffile.imwrite(folder / "bad.tif", nuclei())
    data = (folder / "bad.tif").read_bytes()
    (folder / "bad.tif").write_bytes(data[: len(data) // 3])
    return folder / "bad.tif", "corrupt or truncated"


def _bad_not_image(folder):
    (folder / "bad.png").write_text("hello, not a picture\n")
    return folder / "bad.png", "not a PNG file"


def _bad_stack(folder):
    tifffile.imwrite(folder / "bad.tiff", np.stack([nuclei()] * 5))
    return folder / "bad.tiff", "multi-page TIFF"


def _bad_multi_page(folder):  # two write() calls: two series, page 2 must not be dropped silently
    with tifffile.TiffWriter(folder / "bad.tiff") as tif:
        tif.write(nuclei(seed=1))
        tif.write(nuclei(seed=2))
    return folder / "bad.tiff", "multi-page TIFF (2 images"


def _bad_tiny(folder):
    tifffile.imwrite(folder / "bad.tiff", np.zeros((1, 1), np.uint16))
    return folder / "bad.tiff", "too small"


def _bad_dangling(folder):
    os.symlink(folder / "nowhere.png", folder / "bad.png")
    return folder / "bad.png", "broken symbolic link"


def _bad_loop(folder):
    os.symlink(folder / "bad.png", folder / "bad.png")
    return folder / "bad.png", "symbolic link loop"


BAD = {f.__name__[5:]: f for f in (_bad_zero, _bad_truncated, _bad_not_image, _bad_stack, _bad_multi_page,
                                    _bad_tiny, _bad_dangling, _bad_loop)}


def test_bad_images_are_one_line_each_and_the_good_ones_are_written(tmp_path):
    """Every bad file in one folder (one run keeps the suite fast), between two good images."""
    out = tmp_path / "out"
    bad = {}
    for case, make in BAD.items():
        folder = tmp_path / case
        folder.mkdir()
        path, needle = make(folder)
        bad[case] = (path, needle)
    images = tmp_path / "images"
    images.mkdir()
    for case, (path, needle) in bad.items():  # the same bad files, renamed by case, in one folder
        target = images / f"{case}{path.suffix}"
        if path.is_symlink():
            link = os.readlink(path)
            os.symlink(target if Path(link) == path else link, target)
        else:
            path.rename(target)
        bad[case] = (target, needle)
    tifffile.imwrite(images / "good1.tiff", nuclei())
    tifffile.imwrite(images / "good2.tiff", nuclei(seed=1))
    code, stdout, stderr = cli("predict", images, out, "-q")
    assert code == 1 and "Traceback" not in stdout + stderr
    failed = [line for line in stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed) == len(bad), stderr
    for case, (path, needle) in bad.items():
        mine = [line for line in failed if line.startswith(f"failed: {path}: ")]
        assert len(mine) == 1 and needle in mine[0], (case, stderr)
        assert not (out / f"{case}.tiff").exists()
    assert f"error: {len(bad)} of {len(bad) + 2} images failed" in stderr  # broken links count in "N of M"
    assert (out / "good1.tiff").is_file() and (out / "good2.tiff").is_file()
    record = json.loads((out / "nucleaizer-tf.json").read_text())
    assert sorted(f["image"] for f in record["failures"]) == sorted(str(p) for p, _ in bad.values())
    assert leftovers(tmp_path) == []


def test_a_broken_link_given_as_the_input_is_named(tmp_path):
    os.symlink(tmp_path / "gone.tiff", tmp_path / "a.tiff")
    code, stdout, stderr = cli("predict", tmp_path / "a.tiff", tmp_path / "out", "-q")
    assert code == 1 and "Traceback" not in stdout + stderr
    assert f"failed: {tmp_path / 'a.tiff'}: " in stderr and "broken symbolic link" in stderr
    assert "no such folder" not in stderr


def test_awkward_but_valid_images_are_segmented(tmp_path):
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    tifffile.imwrite(images / "sixteen.tiff", nuclei())
    special = nuclei().astype(np.float32)
    special[0, 0], special[1, 1], special[2, 2] = np.nan, np.inf, -np.inf
    tifffile.imwrite(images / "nan_inf.tiff", special)
    tifffile.imwrite(images / "elongated.tiff", np.tile(nuclei(), (1, 8))[:12])
    tifffile.imwrite(images / "küken_核.tiff", nuclei(dtype=np.uint8, seed=3))
    code, stdout, stderr = cli("predict", images, out)
    assert code == 0, stderr
    assert "Traceback" not in stdout + stderr and "wrote 4 label images" in stdout
    for stem, shape in (("sixteen", (64, 64)), ("nan_inf", (64, 64)), ("elongated", (12, 512)), ("küken_核", (64, 64))):
        labels = tifffile.imread(out / f"{stem}.tiff")
        assert labels.shape == shape and labels.dtype == np.uint16
    assert tifffile.imread(out / "sixteen.tiff").max() > 0
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- whole-run errors


@pytest.fixture()
def one_image(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "a.tiff", nuclei())
    return images


def test_an_input_is_never_overwritten(one_image, tmp_path):
    before = (one_image / "a.tiff").read_bytes()
    code, stdout, stderr = cli("predict", one_image / "a.tiff", one_image)
    assert code == 2
    assert_one_line(stderr, one_image / "a.tiff", "would be overwritten")
    assert (one_image / "a.tiff").read_bytes() == before and sorted(os.listdir(one_image)) == ["a.tiff"]
    code, _, stderr = cli("predict", one_image, one_image)
    assert code == 2 and "must differ from the input folder" in stderr


def test_same_stem_twice(one_image, tmp_path):
    tifffile.imwrite(one_image / "a.tif", nuclei())
    code, _, stderr = cli("predict", one_image, tmp_path / "out")
    assert code == 2
    assert_one_line(stderr, "a.tif", "same stem")


def test_unwritable_or_file_outputs_fail_up_front(one_image, tmp_path):
    blocker = tmp_path / "somefile"
    blocker.write_text("mine\n")
    masks = tmp_path / "masks"
    masks.mkdir()
    tifffile.imwrite(masks / "a.tiff", (nuclei() > 1000).astype(np.uint16))
    cases = [
        (("predict", one_image, blocker), blocker, "existing file"),
        (("predict", one_image, blocker / "sub"), blocker / "sub", "is a file, not a folder"),
        (("estimate-size", masks, "--out", blocker), blocker, "existing file"),
        (("train", "unet", one_image, masks, "--out", blocker), blocker, "existing file"),
        (("train", "maskrcnn", one_image, masks, "--out", blocker / "x"), blocker / "x", "is a file"),
        (("evaluate", masks, masks, "--csv", tmp_path), tmp_path, "existing folder"),
        (("evaluate", masks, masks, "--json", blocker / "s.json"), blocker / "s.json", "is a file, not a folder"),
    ]
    for args, path, needle in cases:
        code, stdout, stderr = cli(*args)
        assert code == 2, (args, stderr)
        assert_one_line(stderr, path, needle)
        assert "DSB score" not in stdout  # nothing was scored before the check
    assert blocker.read_text() == "mine\n"
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_a_run_record_that_cannot_be_written_still_lists_the_failures(one_image, tmp_path, monkeypatch):
    import nucleaizer_tf.pipelines.predict as predict

    (one_image / "broken.png").write_bytes(b"")
    out = tmp_path / "out"

    def full_disk(path, payload):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(predict, "write_json", full_disk)
    code, stdout, stderr = cli("predict", one_image, out, "-q")
    assert code == 2 and "Traceback" not in stdout + stderr
    lines = stderr.strip().splitlines()
    assert lines[0].startswith("failed: ") and "broken.png" in lines[0]
    assert lines[1] == f"error: {out / 'nucleaizer-tf.json'}: cannot write the run record (No space left on device)"
    assert (out / "a.tiff").is_file() and leftovers(tmp_path) == []


def test_weight_files_that_are_not_weights(one_image, tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(10)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(foreign.read_bytes()[:100])
    pointer = tmp_path / "pointer.h5"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 12345\n")
    for path, needle in ((foreign, "not a Keras-2 weight file"), (truncated, "truncated"), (pointer, "Git LFS pointer")):
        code, _, stderr = cli("predict", one_image, tmp_path / "out", "--model", path)
        assert code == 2
        assert_one_line(stderr, path, needle)


def test_mismatched_stems_in_evaluate(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir(), pred.mkdir()
    tifffile.imwrite(gt / "a.tiff", np.ones((8, 8), np.uint16))
    tifffile.imwrite(pred / "b.tiff", np.ones((8, 8), np.uint16))
    code, _, stderr = cli("evaluate", gt, pred)
    assert code == 2
    assert_one_line(stderr, "a")


@pytest.mark.parametrize("args, needle", [
    (("--nucleus-size", "inf"), "--nucleus-size inf"),
    (("--confidence", "0.5"), "--confidence does not apply to the default model"),
    (("--max-network-size", "128"), "--max-network-size does not apply"),
    (("--unet", "."), "--unet applies to the full pipeline only"),
    (("--keep-intermediate",), "--keep-intermediate apply to the full pipeline only"),
])
def test_inapplicable_or_nonsensical_predict_options(one_image, tmp_path, args, needle):
    code, _, stderr = cli("predict", one_image, tmp_path / "out", *args)
    assert code == 2
    assert_one_line(stderr, needle)
    assert not (tmp_path / "out").exists()


def test_nonsensical_training_and_size_values(one_image, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    tifffile.imwrite(masks / "a.tiff", (nuclei() > 1000).astype(np.uint16))
    for args, needle in ((("--lr", "-1"), "--lr -1.0: must be a finite number above 0"),
                         (("--crop", "1"), "--crop 1: must be a whole number of at least 16"),
                         (("--crop", "40"), "--crop 40: must be a multiple of 16"),
                         (("--epochs", "0"), "--epochs 0")):
        code, stdout, stderr = cli("train", "unet", one_image, masks, "--out", tmp_path / "unet", *args)
        assert code == 2, stderr
        assert_one_line(stderr, needle)
    assert not (tmp_path / "unet").exists()
    huge = tmp_path / "huge"
    huge.mkdir()
    labels = np.zeros((32, 32), np.int64)
    labels[2:6, 2:6], labels[10:20, 10:20] = 10**12, 3
    tifffile.imwrite(huge / "ids.tiff", labels)
    code, _, stderr = cli("estimate-size", huge)
    assert code == 2
    assert_one_line(stderr, huge / "ids.tiff", "label ids up to 1000000000000")
    code, stdout, stderr = cli("estimate-size", huge, "--exclude-gaps")  # sparse ids are fine without gaps
    assert code == 0 and "ids" in stdout and stderr == ""


# ----------------------------------------------------------------------------- caches and temporaries


def test_a_damaged_cached_intermediate_is_recomputed(tmp_path):
    folder = tmp_path / ".nucleaizer-work" / "maskrcnn" / "2x"
    calls = []

    def compute():
        calls.append(1)
        labels = np.zeros((200, 200), np.uint16)
        labels[10:60, 10:60], labels[100:180, 90:190] = 1, 2
        return labels

    first = ItemCache(folder, {"factor": 2}).cached("a.tiff", compute, labels=True)
    assert ItemCache(folder, {"factor": 2}).cached("a.tiff", compute, labels=True).tolist() == first.tolist()
    assert len(calls) == 1  # a good entry is reused
    good = (folder / "a.tiff").read_bytes()
    for damage in (lambda b: b[: len(b) // 2], lambda b: b[:-1] + bytes([b[-1] ^ 1])):  # truncated; one bit flipped
        (folder / "a.tiff").write_bytes(damage(good))
        again = ItemCache(folder, {"factor": 2}).cached("a.tiff", compute, labels=True)
        assert again.tolist() == first.tolist() and (folder / "a.tiff").read_bytes() == good
    assert len(calls) == 3
    stale = folder / ".b.tiff.abcdefgh.tmp.tiff"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    ItemCache(folder, {"factor": 2})
    assert not stale.exists()


# ----------------------------------------------------------------------------- interruption and resume


def _folder_of(tmp_path, n=6, shape=(160, 160)) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(n):
        tifffile.imwrite(images / f"img{i}.tiff", nuclei(shape, seed=i))
    return images


def _without_timings(record: dict) -> dict:
    return {**record, "images": [{k: v for k, v in item.items() if k != "seconds"} for item in record["images"]]}


def _labels(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*.tiff") if not p.name.startswith("."))  # pathlib globs match dot files


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in _labels(out)}


def _stop_after_first_output(children: dict, timeout: float = 120) -> dict:
    """Send each child its signal as soon as its first label image appears; their completed processes.

    Signals are sent without waiting for the child to end: waiting for one (a SIGINT run finishes its
    image and its record first) let the other write all its images before it saw its signal."""
    pending, signalled = dict(children), {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, (child, out, sig) in list(pending.items()):
            if _labels(out) or child.poll() is not None:
                child.send_signal(sig)
                signalled[key] = pending.pop(key)
        time.sleep(0.002)
    for child, _, _ in pending.values():
        child.kill()
    done = {}
    for key, (child, out, _) in signalled.items():
        _, stderr = child.communicate(timeout=60)
        done[key] = (child.returncode, stderr, len(_labels(out)))
    return done


SIGNALS = {"SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child before it starts: SIGINT delivered and handled by default, as in a shell. A child
    inherits an ignored SIGINT and the blocked-signal mask; in the parallel suite the test worker had
    one of them set by an earlier test, and the SIGINT run then finished every image with exit 0."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


RESUME_IMAGES = 8  # of 384²: a second or more of work after the first output, for the signal to land mid-run


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """`RESUME_IMAGES` images, two runs stopped after their first image (started together), then an
    uninterrupted run made in this process. The reference run waits for the signals: made meanwhile, it
    held the interpreter so long that the watching thread could see a child only after all were written."""
    root = tmp_path_factory.mktemp("resume")
    images = _folder_of(root, n=RESUME_IMAGES, shape=(384, 384))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    children = {}
    for name, sig in SIGNALS.items():
        out = root / name
        children[name] = (subprocess.Popen([sys.executable, "-m", "nucleaizer_tf", "predict", str(images), str(out), "-q"],
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                           preexec_fn=_ctrl_c_as_in_a_terminal), out, sig)
    stopped = {}
    poller = threading.Thread(target=lambda: stopped.update(_stop_after_first_output(children)))
    poller.start()
    poller.join()
    code, _, stderr = cli("predict", images, root / "reference", "-q")
    assert code == 0, stderr
    return images, root / "reference", root, stopped


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_interrupted_then_resumed_run_equals_an_uninterrupted_one(name, interrupted):
    images, reference, root, stopped = interrupted
    out = root / name
    returncode, stderr, done_before = stopped[name]
    assert 1 <= done_before < RESUME_IMAGES, ("the signal must land mid-run", returncode, stderr[-2000:])
    if name == "SIGINT":
        assert returncode == 130 and "Traceback" not in stderr
        assert stderr.strip().splitlines()[-1] == "interrupted"
    else:
        assert returncode == -signal.SIGKILL
    code, stdout, stderr = cli("predict", images, out, "--skip-existing")
    assert code == 0, stderr
    kept = re.search(r"(\d+) kept from an earlier run", stdout)
    # a SIGKILL may land between an image's write and its journal line: that one image is redone
    assert (int(kept[1]) if kept else 0) in (done_before, done_before - 1) and (kept or done_before == 1), stdout
    assert _outputs(out) == _outputs(reference) and len(_outputs(out)) == RESUME_IMAGES
    mine = json.loads((out / "nucleaizer-tf.json").read_text())
    theirs = json.loads((reference / "nucleaizer-tf.json").read_text())
    theirs["images"] = [{**item, "labels": item["labels"].replace(str(reference), str(out))} for item in theirs["images"]]
    assert _without_timings(mine) == _without_timings(theirs)
    assert leftovers(out) == [] and leftovers(reference) == []


def test_skip_existing_reuses_only_what_still_matches(tmp_path):
    images = _folder_of(tmp_path, n=3, shape=(64, 64))
    out = tmp_path / "out"
    assert cli("predict", images, out, "-q", "--save-csv")[0] == 0
    record, summary = (out / "nucleaizer-tf.json").read_bytes(), (out / "summary.csv").read_bytes()
    code, stdout, _ = cli("predict", images, out, "--skip-existing", "--save-csv")
    assert code == 0 and "3 kept from an earlier run" in stdout
    assert (out / "nucleaizer-tf.json").read_bytes() == record and (out / "summary.csv").read_bytes() == summary
    tifffile.imwrite(images / "img0.tiff", nuclei(seed=9))  # a changed input is recomputed
    (out / "img1.tiff").write_bytes(b"damaged")  # so is a damaged output
    code, stdout, _ = cli("predict", images, out, "--skip-existing", "--save-csv")
    assert code == 0 and "1 kept from an earlier run" in stdout
    assert tifffile.imread(out / "img1.tiff").shape == (64, 64)
    assert len((out / "summary.csv").read_text().splitlines()) == 4
    code, stdout, _ = cli("predict", images, out, "--skip-existing", "--save-csv", "--nucleus-size", "12")
    assert code == 0 and "kept" not in stdout  # a changed setting recomputes everything
    assert json.loads((out / "nucleaizer-tf.json").read_text())["settings"]["nucleus_size"] == 12
    assert leftovers(tmp_path) == []


def test_sigkill_during_a_large_write_leaves_nothing_after_a_rerun(one_image, tmp_path):
    out = tmp_path / "out"
    (out / "overlays").mkdir(parents=True)
    script = textwrap.dedent(f"""
        import numpy as np
        from nucleaizer_tf.io import write_labels
        labels = np.random.default_rng(0).integers(0, 60000, (3000, 3000)).astype(np.uint16)
        write_labels({str(out / 'a.tiff')!r}, labels, compress=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not leftovers(out) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    child.kill()
    child.wait(timeout=30)
    assert [p.name.startswith(".a.tiff.") for p in leftovers(out)] == [True], "killed mid-write"
    assert not (out / "a.tiff").exists()
    stale = out / "overlays" / ".a.png.abcdefgh.tmp.png"
    kept = [out / ".notes.tmp.txt", out / ".a.tiff.tmp", out / "mine.tiff.abcdefgh.tmp.tiff",
            out / ".b.tiff.abcdefgh.tmp.png"]  # not atomic_path's names: not ours to remove
    for path in [stale, *kept]:
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 60, time.time() - 60))
    code, _, stderr = cli("predict", one_image, out, "--overlay", "-q")
    assert code == 0, stderr
    assert leftovers(out) == [] and all(p.read_bytes() == b"x" for p in kept)
    assert tifffile.imread(out / "a.tiff").shape == (64, 64) and (out / "overlays" / "a.png").is_file()
