"""The import graph keeps the layers of docs/architecture.md: no import runs upward, no package cycle."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: package → layer, top (front ends) to bottom; modules of the package root and unlisted packages are
#: the bottom layer (io and the leaf modules)
LAYERS = {"cli": 6, "napari": 6, "pipelines": 5, "models": 4,
          "default_model": 3, "full": 3, "maskrcnn": 3, "unet": 3, "pix2pix": 3,
          "postprocess": 2, "style": 2, "data": 2}
#: the package root's own entry points, which may import anything
ENTRY_POINTS = {"nucleaizer_tf/__init__.py", "nucleaizer_tf/__main__.py"}


def _sources():
    """(installed package name, file) of every module: the package and the CLI (installed as nucleaizer_tf.cli)."""
    for path in sorted((REPO / "nucleaizer_tf").rglob("*.py")):
        parts = path.relative_to(REPO / "nucleaizer_tf").parts
        yield (parts[0] if len(parts) > 1 else ""), path
    for path in sorted((REPO / "cli").rglob("*.py")):
        yield "cli", path


def _imported_packages(path: Path):
    """(line, package) of every import of nucleaizer_tf.<package>, at module level or inside functions."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "nucleaizer_tf" else [])
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "nucleaizer_tf" and len(parts) > 1:
                yield node.lineno, parts[1]


def _layer(package: str) -> int:
    return LAYERS.get(package, 1)


def test_no_import_runs_upward():
    upward = []
    for package, path in _sources():
        if str(path.relative_to(REPO)) in ENTRY_POINTS:
            continue
        for line, target in _imported_packages(path):
            if target != package and _layer(target) > _layer(package):
                upward.append(f"{path.relative_to(REPO)}:{line} imports nucleaizer_tf.{target}")
    assert not upward, "\n".join(upward)


def test_no_package_depends_on_itself_through_another():
    edges = {}
    for package, path in _sources():
        if package and str(path.relative_to(REPO)) not in ENTRY_POINTS:
            edges.setdefault(package, set()).update(
                t for _, t in _imported_packages(path) if t != package and (REPO / "nucleaizer_tf" / t).is_dir())
    cycles = []

    def visit(node, trail):
        for target in sorted(edges.get(node, ())):
            if target == trail[0]:
                cycles.append(" → ".join([*trail, target]))
            elif target not in trail and len(trail) < len(edges):
                visit(target, [*trail, target])

    for start in sorted(edges):
        visit(start, [start])
    assert not cycles, "\n".join(sorted(set(cycles)))
