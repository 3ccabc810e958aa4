"""Compute precision of the networks: float32, or bfloat16 where the hardware runs it fast.

`resolve_precision("auto")` picks bfloat16 where the CPU reports AVX512_BF16 or AMX-BF16 (or a
GPU is used: bfloat16 on compute capability 8.0 and later, float16 before), float32 elsewhere.
A reduced precision is applied with Keras' mixed dtype policies (`mixed_bfloat16`,
`mixed_float16`): layers compute in the half type while their variables stay float32, so legacy
and shipped weights load unchanged. `policy_scope` sets the policy only while a network is built
(Keras keeps the default policy per thread) and restores the previous one afterwards.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

#: the values a `precision` option takes
PRECISIONS = ("float32", "bfloat16", "auto")
#: CPU flags (as /proc/cpuinfo spells them) that make bfloat16 matrix maths fast
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: resolved precision -> Keras dtype policy
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def cpu_flags() -> frozenset[str]:
    """The feature flags of the first CPU in `/proc/cpuinfo` (empty where it cannot be read).

    Returns
    -------
    frozenset of str
        The flags as /proc/cpuinfo spells them (e.g. "avx2", "avx512_bf16"); empty on systems without
        /proc/cpuinfo (macOS, Windows) or without a "flags" line.

    Examples
    --------
    >>> flags = cpu_flags()
    >>> isinstance(flags, frozenset)
    True
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16() -> bool:
    """Whether the CPU reports a bfloat16 matrix instruction set (AVX512_BF16 or AMX-BF16).

    Returns
    -------
    bool
        True when `cpu_flags` holds one of `BF16_CPU_FLAGS` ("avx512_bf16", "amx_bf16").

    Examples
    --------
    >>> isinstance(cpu_has_bf16(), bool)
    True
    """
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def gpu_half_type() -> str | None:
    """"bfloat16" or "float16" when TensorFlow sees a GPU (its fast half type), else None.

    Imports TensorFlow and asks it for the physical GPUs; the first GPU's compute capability decides.

    Returns
    -------
    str or None
        "bfloat16" on compute capability 8.0 and later, "float16" before (or when the capability
        cannot be read), None without a GPU.

    Examples
    --------
    >>> gpu_half_type() in (None, "bfloat16", "float16")
    True
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    try:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
    except (ValueError, RuntimeError):
        capability = (0, 0)
    return "bfloat16" if tuple(capability or (0, 0)) >= (8, 0) else "float16"


@functools.lru_cache(maxsize=1)
def _auto() -> str:
    return gpu_half_type() or ("bfloat16" if cpu_has_bf16() else "float32")


def resolve_precision(precision: str) -> str:
    """The concrete compute type of a `precision` option: "float32", "bfloat16" or "float16".

    "auto" is a GPU's fast half type when a GPU is used (bfloat16 on compute capability 8.0 and later,
    float16 before), else bfloat16 on a CPU with AVX512_BF16 or AMX-BF16, otherwise float32. The
    probe runs once per process.

    Parameters
    ----------
    precision : str
        One of `PRECISIONS` ("float32", "bfloat16", "auto"), or "float16".

    Returns
    -------
    str
        "float32", "bfloat16" or "float16"; `precision` itself unless it is "auto".

    Raises
    ------
    ValueError
        For any other value.

    Examples
    --------
    >>> resolve_precision("float32")
    'float32'
    >>> resolve_precision("auto") in ("float32", "bfloat16", "float16")
    True
    """
    if precision not in PRECISIONS and precision != "float16":
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return _auto() if precision == "auto" else precision


def check_precision(value) -> str | None:
    """Option check for the model facade: None when `value` is a valid precision.

    Parameters
    ----------
    value : object
        The value given for the `precision` option.

    Returns
    -------
    str or None
        None when `value` is one of `PRECISIONS` ("float32", "bfloat16", "auto"), else the reason it is
        not, to follow the option's name in an error message.

    Examples
    --------
    >>> check_precision("auto") is None
    True
    >>> check_precision("fp16")
    'must be one of float32, bfloat16, auto'
    """
    return None if value in PRECISIONS else f"must be one of {', '.join(PRECISIONS)}"


@contextlib.contextmanager
def policy_scope(precision: str) -> Iterator[str]:
    """Build the Keras layers created inside this block with the dtype policy of `precision`.

    The previous default policy is restored on exit, even after an error. Layers given an explicit
    `dtype=` keep it (use `dtype="float32"` for outputs such as softmax and for coordinate maths).

    Parameters
    ----------
    precision : str
        A `precision` option ("float32", "bfloat16", "auto" or "float16"), resolved with
        `resolve_precision`.

    Yields
    ------
    str
        The Keras policy name in force inside the block: "float32", "mixed_bfloat16" or
        "mixed_float16".

    Examples
    --------
    >>> import keras
    >>> with policy_scope("bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.compute_dtype, layer.variable_dtype
    ('bfloat16', 'float32')
    >>> keras.config.dtype_policy().name
    'float32'
    """
    import keras

    name = POLICIES[resolve_precision(precision)]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)
