"""The import graph of the whole repository (the four packages, benchmarks and tests), read from the
source by grimp without importing anything. Imports inside functions and under TYPE_CHECKING count:
a lazy import still ties two modules together."""

from __future__ import annotations

import copy

import grimp
import pytest
from grimp import Layer

PACKAGES = ("schemas", "models", "daemon", "training", "console", "benchmarks", "tests")

# Top to bottom: a layer may import the layers below it, never those above. daemon, training and
# console share a layer and never import each other (they meet in Postgres); the packages never
# import benchmarks or tests.
LAYERS = [
    Layer("benchmarks", "tests", independent=False),
    Layer("daemon", "training", "console"),
    "models",
    "schemas",
]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)  # no cache: it would be written into the tree


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """The shortest cycle through each import that has one, one per set of modules, as the chain of
    modules from the first back to itself."""
    found: dict[frozenset[str], tuple[str, ...]] = {}
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module) - {module}):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is None:
                continue
            cycle = (module, *back)
            known = found.get(frozenset(cycle))
            if known is None or len(cycle) < len(known):
                found[frozenset(cycle)] = cycle
    return sorted(found.values())


def test_the_graph_holds_every_package(graph):
    assert {m.split(".")[0] for m in graph.modules} == set(PACKAGES)
    assert len(graph.modules) > 100


def test_no_module_takes_part_in_an_import_cycle(graph):
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_sees_a_cycle_inside_one_package():
    g = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.a", "p.d")]:
        g.add_import(importer=importer, imported=imported)
    assert import_cycles(g) == [("p.a", "p.b", "p.c", "p.a")]


def test_packages_import_only_the_layers_below_them(graph):
    illegal = graph.find_illegal_dependencies_for_layers(layers=LAYERS)
    routes = [" -> ".join([*sorted(r.heads), *r.middle, *sorted(r.tails)])
              for dep in sorted(illegal, key=lambda d: (d.importer, d.imported)) for r in dep.routes]
    assert not illegal, "imports against the layering:\n" + "\n".join(routes)


@pytest.mark.parametrize(("importer", "imported"), [
    ("schemas.settings", "models.spec"),
    ("models.spec", "daemon.app"),
    ("models.spec", "training.gate"),
    ("daemon.app", "training.gate"),
    ("training.gate", "daemon.app"),
    ("daemon.app", "tests.factories"),
    ("console.app", "training.registry"),
    ("console.app", "daemon.app"),
    ("schemas.registry", "console.queries"),
])
def test_the_layering_check_catches(graph, importer, imported):
    graph = copy.deepcopy(graph)
    graph.add_import(importer=importer, imported=imported)
    assert graph.find_illegal_dependencies_for_layers(layers=LAYERS)


def direct_imports(graph: grimp.ImportGraph, importers, imported_ok) -> list[str]:
    """``importer -> imported`` for each direct import by ``importers`` that ``imported_ok`` refuses."""
    return sorted(f"{importer} -> {imported}" for importer in importers
                  for imported in graph.find_modules_directly_imported_by(importer) if not imported_ok(imported))


def test_no_module_imports_a_test_module(graph):
    """A helper that two test modules share lives in a module of its own, not in one of them."""
    helpers = direct_imports(graph, graph.modules, lambda m: not m.rsplit(".", 1)[-1].startswith("test_"))
    assert not helpers, "modules import test modules:\n" + "\n".join(helpers)


def test_benchmarks_take_test_helpers_only_from_factories_modules(graph):
    helpers = direct_imports(graph, graph.find_children("benchmarks") | graph.find_descendants("benchmarks"),
                             lambda m: m.split(".")[0] != "tests" or m.rsplit(".", 1)[-1] == "factories")
    assert not helpers, "benchmarks import test modules:\n" + "\n".join(helpers)
