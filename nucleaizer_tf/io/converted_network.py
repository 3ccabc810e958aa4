"""The disk cache of networks converted for OpenVINO, so a conversion is paid once per weights and input.

A converted network is kept as OpenVINO's IR (``<key>.xml`` and ``<key>.bin``, float32 weights) in
``<cache>/openvino/``, where ``<cache>`` is ``$NUCLEAIZER_TF_CACHE``, else
``$XDG_CACHE_HOME/nucleaizer-tf``, else ``~/.cache/nucleaizer-tf``. The key is the digest of the weight
values, the input's shape class (batch 1, any height and width, C channels) and the OpenVINO version,
so changed weights or another OpenVINO never read a stale file. Both files are written under temporary
names and renamed, the ``.xml`` last: a ``.xml`` is only ever there with its ``.bin``. A cache folder
that cannot be written only costs the conversion next time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from nucleaizer_tf.io.digest import fingerprint

#: version of the cache's layout and conversion recipe (part of every key)
CACHE_FORMAT = 1


def cache_root() -> Path:
    """The folder nucleaizer-tf keeps caches in (not created here).

    Returns
    -------
    pathlib.Path
        ``$NUCLEAIZER_TF_CACHE``, else ``$XDG_CACHE_HOME/nucleaizer-tf``, else ``~/.cache/nucleaizer-tf``
        (the system's temporary folder where there is no home folder).

    Examples
    --------
    >>> cache_root().name in ("nucleaizer-tf",) or "NUCLEAIZER_TF_CACHE" in os.environ
    True
    """
    if os.environ.get("NUCLEAIZER_TF_CACHE"):
        return Path(os.environ["NUCLEAIZER_TF_CACHE"]).expanduser()
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except RuntimeError:  # no home folder (a service account): the system's temporary folder
        base = Path(tempfile.gettempdir())
    return Path(base).expanduser() / "nucleaizer-tf"


def cached_openvino_model(weights_digest: str, channels: int, convert: Callable[[], object],
                          cache_dir: str | os.PathLike | None = None) -> tuple[object, bool]:
    """The converted network for these weights and input, read from the cache or converted and stored.

    Parameters
    ----------
    weights_digest : str
        Identity of the weight values (`nucleaizer_tf.io.digest.arrays_digest`).
    channels : int
        The input's channel count (the shape class is batch 1, any height and width).
    convert : callable
        ``convert() -> openvino.Model``, called only when the cache has no such network.
    cache_dir : str or os.PathLike, optional
        Where converted networks are kept; default ``cache_root() / "openvino"``.

    Returns
    -------
    tuple of (openvino.Model, bool)
        The network, and whether it came from the cache.

    Examples
    --------
    >>> model, hit = cached_openvino_model(arrays_digest(net.get_weights()), 3,
    ...                                    lambda: convert_keras(net, 3))  # doctest: +SKIP
    """
    import openvino

    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "openvino"
    key = fingerprint({"weights": weights_digest, "input": [1, None, None, int(channels)],
                       "openvino": openvino.get_version(), "format": CACHE_FORMAT})
    xml, weights = folder / f"{key}.xml", folder / f"{key}.bin"
    if xml.is_file() and weights.is_file():
        try:
            return openvino.Core().read_model(xml, weights), True
        except RuntimeError:  # a damaged cache entry: convert again and replace it
            pass
    model = convert()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".convert.", dir=folder) as scratch:
            openvino.save_model(model, Path(scratch) / "model.xml", compress_to_fp16=False)
            os.replace(Path(scratch) / "model.bin", weights)
            os.replace(Path(scratch) / "model.xml", xml)
    except OSError:
        pass  # an unwritable cache only costs the conversion next time
    return model, False
