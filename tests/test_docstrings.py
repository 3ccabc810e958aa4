"""Every public function and class of the library documents itself (numpydoc), and its examples run.

Public: a module's `__all__`, or else every name it defines without a leading underscore. Functions
need a `Parameters` section (when they take arguments), `Returns` or `Yields` (unless annotated
``-> None``) and `Examples`; classes need `Parameters` or `Attributes` and `Examples` (exceptions: a
docstring). Examples that need files, weights or a network carry ``# doctest: +SKIP``; the others run
here.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import pkgutil

import pytest

import nucleaizer_tf

ONLY = os.environ.get("DOC_MODULES", "")  # comma-separated prefixes, for working on a few modules


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(nucleaizer_tf.__path__, "nucleaizer_tf."):
        if info.name.startswith("nucleaizer_tf.cli") or info.name.endswith("__main__"):
            continue
        if ONLY and not any(info.name.startswith(p) for p in ONLY.split(",")):
            continue
        names.append(info.name)
    return sorted(names)


def _public(module) -> list[tuple[str, object]]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, o in vars(module).items()
                 if not n.startswith("_") and getattr(o, "__module__", None) == module.__name__]
    out = []
    for name in names:
        obj = getattr(module, name, None)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__:
            out.append((name, obj))
    return out


def _missing(obj) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if not doc:
        return ["a docstring"]
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return []
        need = [] if ("Parameters" in doc or "Attributes" in doc) else ["Parameters or Attributes"]
        return need + ([] if "Examples" in doc else ["Examples"])
    signature = inspect.signature(obj)
    need = []
    if signature.parameters and "Parameters" not in doc:
        need.append("Parameters")
    if signature.return_annotation not in ("None", None) and "Returns" not in doc and "Yields" not in doc:
        need.append("Returns")
    if "Examples" not in doc:
        need.append("Examples")
    return need


MODULES = _modules()


@pytest.mark.parametrize("name", MODULES)
def test_public_api_is_documented(name):
    module = importlib.import_module(name)
    gaps = {f"{name}.{attr}": _missing(obj) for attr, obj in _public(module)}
    gaps = {k: v for k, v in gaps.items() if v}
    assert not gaps, "\n".join(f"{k}: needs {', '.join(v)}" for k, v in gaps.items())


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        if test.examples:
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} failing example(s) in {name} (see the captured output)"
