"""The package layering, checked from the source with ``ast`` (nothing is imported).

- ``adapter.jobs`` is the pure core: no aiohttp, nothing of the HTTP side or the process;
- ``adapter.http`` knows HTTP only: never the job logic nor the bridges built on it;
- the devkit (stand-in runner, demo, test data) is never imported by production code; the
  CLI names its two commands by string so that a build without the devkit still runs;
- imports between packages (each subpackage, and each top-level module, is one node) form
  no cycle.

Every import statement counts, including those under ``if TYPE_CHECKING:`` and inside
functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[1]
PACKAGE: Final = ROOT / "adapter"

# Subpackages are single nodes of the package graph; top-level modules are their own nodes.
SUBPACKAGES: Final = ("adapter.http", "adapter.jobs", "adapter.commands", "adapter.devkit")

# (layer, what it must never import, why)
FORBIDDEN: Final = (
    (
        "adapter.jobs",
        (
            "aiohttp",
            "adapter.http",
            "adapter.app",
            "adapter.admin",
            "adapter.submission",
            "adapter.server",
            "adapter.cli",
            "adapter.commands",
            "adapter.devkit",
        ),
        "the job logic is pure: no aiohttp, no HTTP transport, no process wiring",
    ),
    (
        "adapter.http",
        (
            "adapter.jobs",
            "adapter.submission",
            "adapter.admin",
            "adapter.app",
            "adapter.server",
            "adapter.cli",
            "adapter.commands",
            "adapter.devkit",
        ),
        "the HTTP transport knows nothing of jobs; adapter.submission and adapter.admin bridge",
    ),
)
DEVKIT: Final = "adapter.devkit"
# The one production module allowed to name the devkit (by string, loaded if present).
DEVKIT_NAMED_BY: Final = "adapter.cli"


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement: the importing module, the imported module, where."""

    module: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def module_name(path: Path, root: Path) -> str:
    """``adapter/http/relay.py`` -> ``adapter.http.relay``; a package's ``__init__`` is it."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, source: str, *, is_package: bool = False) -> list[Import]:
    """Every module ``source`` imports, relative imports resolved, ``from m import x`` as
    both ``m`` and ``m.x`` (x may be a submodule)."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(Import(module, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.append(Import(module, base, node.lineno))
            found.extend(
                Import(module, f"{base}.{alias.name}", node.lineno) for alias in node.names
            )
    return found


def within(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` or one of its submodules."""
    return name == prefix or name.startswith(prefix + ".")


def node_of(name: str) -> str:
    """The package-graph node a module belongs to."""
    for package in SUBPACKAGES:
        if within(name, package):
            return package
    return name


def layer_violations(imports: Iterable[Import]) -> list[str]:
    """Imports that break a FORBIDDEN rule or reach the devkit from production code."""
    problems: list[str] = []
    for item in imports:
        for layer, banned, why in FORBIDDEN:
            if within(item.module, layer):
                problems.extend(
                    f"{item}: {layer} must not import {target} ({why})"
                    for target in banned
                    if within(item.target, target)
                )
        if within(item.target, DEVKIT) and not within(item.module, DEVKIT):
            problems.append(
                f"{item}: production code must not import {DEVKIT} (dev/test only, "
                f"excluded from the image); {DEVKIT_NAMED_BY} loads its commands by name"
            )
    return sorted(set(problems))


def package_edges(imports: Iterable[Import], modules: set[str]) -> dict[str, dict[str, Import]]:
    """Node -> node edges between different nodes, each with one import that makes it."""
    edges: dict[str, dict[str, Import]] = {}
    for item in imports:
        if item.target not in modules:
            continue  # third-party, or ``from m import name`` where name is not a module
        source, target = node_of(item.module), node_of(item.target)
        if source != target and target != "adapter":  # the root package holds __version__
            edges.setdefault(source, {}).setdefault(target, item)
    return edges


def find_cycle(edges: Mapping[str, Mapping[str, Import]]) -> list[str] | None:
    """One cycle of nodes (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def describe_cycle(cycle: list[str], edges: Mapping[str, Mapping[str, Import]]) -> str:
    return "import cycle between packages: " + "; ".join(
        str(edges[a][b]) for a, b in itertools.pairwise(cycle)
    )


def devkit_named_outside_cli(module: str, source: str) -> list[str]:
    """String constants naming the devkit in a production module other than the CLI."""
    if within(module, DEVKIT) or module == DEVKIT_NAMED_BY:
        return []
    return [
        f"{module} (line {node.lineno}) names {node.value!r}: only {DEVKIT_NAMED_BY} "
        "may load the devkit, and only by name"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and within(node.value, DEVKIT)
    ]


def _sources() -> dict[str, tuple[str, bool]]:
    return {
        module_name(path, ROOT): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in sorted(PACKAGE.rglob("*.py"))
    }


SOURCES: Final = _sources()
IMPORTS: Final = [
    item
    for module, (source, is_package) in SOURCES.items()
    for item in imports_of(module, source, is_package=is_package)
]


def test_the_scan_sees_the_layers() -> None:
    """The scan finds the modules and the bridges' imports, so the rules below bite."""
    assert {"adapter.jobs.rewrite", "adapter.http.relay", "adapter.submission"} <= set(SOURCES)
    seen = {(item.module, item.target) for item in IMPORTS}
    assert ("adapter.submission", "adapter.jobs.rewrite") in seen
    assert ("adapter.admin", "adapter.jobs.workflow") in seen


def test_layers_import_only_downwards() -> None:
    """adapter.jobs imports no aiohttp nor HTTP/process code; adapter.http no job code;
    no production module imports the devkit."""
    problems = layer_violations(IMPORTS)
    assert not problems, "\n".join(problems)


def test_only_the_cli_names_the_devkit() -> None:
    """The devkit's commands are loaded by name from adapter.cli and nowhere else."""
    problems = [
        problem
        for module, (source, _) in SOURCES.items()
        for problem in devkit_named_outside_cli(module, source)
    ]
    assert not problems, "\n".join(problems)


def test_packages_import_without_cycles() -> None:
    """Subpackages and top-level modules form an acyclic import graph."""
    edges = package_edges(IMPORTS, set(SOURCES))
    cycle = find_cycle(edges)
    assert cycle is None, describe_cycle(cycle, edges)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        pytest.param(
            "adapter.jobs.rewrite",
            "from aiohttp import web\n",
            "adapter.jobs.rewrite (line 1) imports aiohttp: adapter.jobs must not import aiohttp",
            id="jobs-aiohttp",
        ),
        pytest.param(
            "adapter.jobs.rewrite",
            "def f():\n    from ..http import relay\n",
            "adapter.jobs.rewrite (line 2) imports adapter.http: adapter.jobs must not import "
            "adapter.http",
            id="jobs-http-relative-lazy",
        ),
        pytest.param(
            "adapter.http.relay",
            "import adapter.jobs.workflow\n",
            "adapter.http.relay (line 1) imports adapter.jobs.workflow: adapter.http must not "
            "import adapter.jobs",
            id="http-jobs",
        ),
        pytest.param(
            "adapter.app",
            "from adapter.devkit import demo\n",
            "adapter.app (line 1) imports adapter.devkit: production code must not import "
            "adapter.devkit",
            id="app-devkit",
        ),
    ],
)
def test_a_violation_is_reported_with_module_and_import(
    module: str, source: str, expected: str
) -> None:
    """A forbidden import is caught, relative or lazy, and named with its line."""
    problems = layer_violations(imports_of(module, source))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_a_cycle_is_reported_with_the_imports_that_make_it() -> None:
    """Two packages importing each other are a cycle, named import by import."""
    imports = [
        *imports_of("adapter.http.proxy", "from adapter.config import Config\n"),
        *imports_of("adapter.config", "from adapter.http.proxy import X\n"),
    ]
    edges = package_edges(imports, {"adapter.http.proxy", "adapter.config"})
    cycle = find_cycle(edges)
    assert cycle == ["adapter.config", "adapter.http", "adapter.config"]
    assert describe_cycle(cycle, edges) == (
        "import cycle between packages: "
        "adapter.config (line 1) imports adapter.http.proxy; "
        "adapter.http.proxy (line 1) imports adapter.config"
    )


def test_devkit_named_outside_the_cli_is_reported() -> None:
    """A production module that loads the devkit by name is caught too."""
    source = 'import importlib\nimportlib.import_module("adapter.devkit.demo")\n'
    assert devkit_named_outside_cli("adapter.server", source) == [
        "adapter.server (line 2) names 'adapter.devkit.demo': only adapter.cli may load "
        "the devkit, and only by name"
    ]
    assert devkit_named_outside_cli("adapter.cli", source) == []
