"""The package's layering, read from the source with ``ast``: data flows one way.

- Inside ``amqpbroker/broker/`` the imports form no cycle.  Every import counts: module
  level, inside a function, and under ``if TYPE_CHECKING:`` (a type-only cycle still
  means neither module can be read, or changed, without the other).  Where the domain
  must call back up (a channel writing to its connection, a queue handing a message to a
  consumer) it goes through the small interfaces in ``broker/ports.py``.
- ``protocol/`` (sans-IO frames and connection state) and ``store/`` import nothing
  above them: themselves, ``errors``, ``config`` and ``versions`` (the RabbitMQ
  release's behaviour table: settings data, which config itself imports), and the
  store the protocol's field-table codec (queue and binding arguments are stored as
  AMQP tables).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "amqpbroker"

# What the bottom layers may import besides themselves.
LOWER_ALLOWED = {
    "protocol": {"errors", "config", "versions"},
    "store": {"errors", "config", "versions", "protocol"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every amqpbroker module ``name`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # ``from . import methods`` imports the module amqpbroker.broker.methods.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _within(graph: dict[str, set[str]], prefix: str) -> dict[str, set[str]]:
    return {
        name: {target for target in targets if target.startswith(prefix)}
        for name, targets in graph.items()
        if name.startswith(prefix)
    }


def _short(names: set[str]) -> list[str]:
    return sorted(name.removeprefix("amqpbroker.broker.") for name in names)


def test_the_graph_is_read_from_the_source() -> None:
    # A reader that missed relative, TYPE_CHECKING or in-function imports would make
    # the tests below pass for the wrong reason.
    graph = import_graph()
    assert "amqpbroker.broker.message" in graph["amqpbroker.broker.queue"]
    assert "amqpbroker.protocol.connection" in graph["amqpbroker.broker.session"]
    assert "amqpbroker.broker.channel" in graph["amqpbroker.broker.stats"]  # TYPE_CHECKING
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_broker_package_has_no_import_cycle() -> None:
    broker = _within(import_graph(), "amqpbroker.broker.")
    found = [_short(component) for component in cycles(broker)]
    assert not found, f"import cycles in amqpbroker/broker/: {found}"


@pytest.mark.parametrize("layer", ["protocol", "store"])
def test_bottom_layers_import_nothing_above_them(layer: str) -> None:
    own = f"amqpbroker.{layer}"
    allowed = [f"amqpbroker.{name}" for name in (layer, *LOWER_ALLOWED[layer])]
    wrong = {
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        if name == own or name.startswith(own + ".")
        for target in targets
        if target != "amqpbroker"
        and not any(target == ok or target.startswith(ok + ".") for ok in allowed)
    }
    assert not wrong, sorted(wrong)
