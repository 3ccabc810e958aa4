"""The napari plugin's checks (tests/napari_plugin_checks.py), run in a pytest process of their own.

That process must not import TensorFlow, which this one (like every pytest worker here) does: TensorFlow
and an LLVM-based OpenGL driver (Mesa's, as under Xvfb) crash a process they share. Each check of that
file is reported here as its own test, with the other process's outcome and message.
"""

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

CHECKS = Path(__file__).with_name("napari_plugin_checks.py")
NAMES = [node.name for node in ast.parse(CHECKS.read_text(encoding="utf-8")).body
         if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    pytest.importorskip("napari", reason="the napari plugin's tests need napari (pip install -e '.[test]')")
    junit = tmp_path_factory.mktemp("napari") / "results.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "QT_QPA_PLATFORM"))}
    done = subprocess.run([sys.executable, "-m", "pytest", str(CHECKS), "-n", "0", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={junit}", "--basetemp", str(junit.parent / "tmp")],
                          capture_output=True, text=True, env=env, cwd=CHECKS.parents[1], timeout=1500)
    outcomes = {}
    if junit.is_file():
        for case in ET.parse(junit).getroot().iter("testcase"):
            problem = next(iter(case), None)
            kind = "passed" if problem is None or problem.tag == "system-out" else problem.tag
            outcomes[case.get("name")] = (kind, (problem.get("message", "") + "\n" + (problem.text or ""))
                                          if problem is not None else "")
    return done, outcomes


@pytest.mark.parametrize("name", NAMES)
def test_napari_plugin(results, name):
    done, outcomes = results
    if name not in outcomes:
        skipped = [message for kind, message in outcomes.values() if kind == "skipped"]
        if skipped:  # the whole module skipped (no display)
            pytest.skip(skipped[0].strip().splitlines()[-1])
        pytest.fail(f"the napari checks did not report {name} (exit {done.returncode}):\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    kind, message = outcomes[name]
    if kind == "skipped":
        pytest.skip(message.strip().splitlines()[0] if message.strip() else "skipped")
    assert kind == "passed", message[-4000:]
    assert done.returncode == 0, f"the napari checks' process ended with {done.returncode}:\n{done.stderr[-3000:]}"
