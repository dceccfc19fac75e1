"""The package's imports follow the layers that docs/ARCHITECTURE.md names: no module imports a higher layer."""

from __future__ import annotations

import re
from test_library import ROOT, package_imports


def documented_layers() -> dict[str, int]:
    """Top-level module or package name -> its layer, from the table under "## Layers" in docs/ARCHITECTURE.md."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = {}
    for row in re.finditer(r"^\| (\d+) \| ([^|]+) \|", section, flags=re.MULTILINE):
        for name in re.findall(r"`([a-z_]+)`", row[2]):
            layers[name] = int(row[1])
    return layers


def top_level(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_module_has_a_documented_layer():
    layers = documented_layers()
    assert len(set(layers.values())) >= 8
    modules = {top_level(name) for name in package_imports()} - {""}  # rift/__init__ exports lazily, by name
    assert sorted(modules - layers.keys()) == []
    assert sorted(layers.keys() - modules) == [], "the table names modules that do not exist"


def upward_imports(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    return [f"{name} (layer {layers[top_level(name)]}) imports {found} (layer {layers[top_level(found)]})"
            for name, imports in sorted(graph.items()) if top_level(name)
            for found in sorted(imports) if top_level(found) and layers[top_level(found)] > layers[top_level(name)]]


def test_no_module_imports_a_higher_layer():
    assert upward_imports(package_imports(), documented_layers()) == []


def test_the_check_reports_an_upward_import_and_allows_the_rest():
    layers = documented_layers()
    graph = {"rift.data.batching": {"rift.models", "rift.text.words"}, "rift.objectives.rift": {"rift.models"},
             "rift.cli": {"rift.api"}}
    assert upward_imports(graph, layers) == [
        f"rift.data.batching (layer {layers['data']}) imports rift.models (layer {layers['models']})"]
