"""Import direction: the rules ARCHITECTURE.md writes down, checked on the source.

Every module under app/ is parsed with `ast` (nothing is imported), and each import of
an app module is recorded as module-level or function-level (imports under
`if TYPE_CHECKING:` are left out: they never run). The tests then assert that the
module-level imports have no cycle, that the layers point one way, and that no module
imports another package's private (underscore) names.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. "app.sales.routes"
    target: str  # the imported module, e.g. "app.sales.queries"
    name: str | None  # the name taken from it (`from x import name`), else None
    in_function: bool  # False: runs when the module is imported


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(APP.rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _from_base(module: str, path: Path, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    base = module.split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports_of(module: str, path: Path) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            nested = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend(Import(module, alias.name, None, nested)
                             for alias in child.names if alias.name.split(".")[0] == "app")
            elif isinstance(child, ast.ImportFrom):
                base = _from_base(module, path, child)
                if base and base.split(".")[0] == "app":
                    for alias in child.names:
                        sub = f"{base}.{alias.name}"
                        found.append(Import(module, sub if sub in MODULES else base,
                                            None if sub in MODULES else alias.name, nested))
            visit(child, nested)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return found


IMPORTS: list[Import] = [imp for mod, path in MODULES.items() for imp in _imports_of(mod, path)]


def _package(module: str) -> str:
    """The capability a module belongs to: app.sales.queries -> app.sales."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def module_level_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if not imp.in_function and imp.target in MODULES and imp.target != imp.source:
            edges.setdefault(imp.source, set()).add(imp.target)
    return edges


def test_the_parser_sees_the_app():
    assert len(MODULES) > 100
    assert Import("app.sales.routes", "app.sales.queries", None, False) in IMPORTS or any(
        imp.source == "app.sales.routes" and imp.target.startswith("app.sales")
        for imp in IMPORTS)


def test_no_import_cycles_among_module_level_imports():
    cycles = _cycles(module_level_edges())
    assert cycles == [], "import cycles (module-level imports): " + "; ".join(
        " <-> ".join(cycle) for cycle in cycles)


# --- Layers -------------------------------------------------------------------------

# What a model module may import at module level: other models and the pure shared
# helpers. Never operations, routes, clients or the web layer.
MODEL_MAY_IMPORT = {"app.extensions", "app.types", "app.money", "app.auth.permissions"}

# Modules that handle an HTTP request and so may read flask's request/session.
REQUEST_MODULES = {"app.sales.panel", "app.intake.webhooks", "app.payments.webhooks",
                   "app.ops.request_ids"}


def _is_models(module: str) -> bool:
    return module == "app.models" or module.endswith(".models")


def test_models_import_only_models_and_pure_helpers():
    wrong = sorted(
        f"{imp.source} -> {imp.target}" for imp in IMPORTS
        if _is_models(imp.source) and not imp.in_function
        and not (_is_models(imp.target) or imp.target in MODEL_MAY_IMPORT))
    assert wrong == []


def test_only_the_web_layer_imports_routes():
    """Routes are the top layer: app/web registers them, nothing else imports them."""
    wrong = sorted(f"{imp.source} -> {imp.target}" for imp in IMPORTS
                   if imp.target.endswith(".routes") and not imp.source.startswith("app.web"))
    assert wrong == []


def test_external_clients_import_nothing_from_the_desk():
    """app/pipedrive/client.py and app/stripe_api/client.py speak HTTP and nothing else."""
    wrong = sorted(f"{imp.source} -> {imp.target}" for imp in IMPORTS
                   if imp.source in ("app.pipedrive.client", "app.stripe_api.client"))
    assert wrong == []


def _web_request_users() -> list[str]:
    users = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "flask" and (
                    {alias.name for alias in node.names} & {"request", "session"}):
                users.append(module)
    return sorted(set(users))


def test_only_request_handlers_read_flask_request_and_session():
    wrong = [m for m in _web_request_users()
             if not (m.startswith(("app.web", "app.sandbox")) or m in REQUEST_MODULES
                     or m.endswith((".routes", ".cli")))]
    assert wrong == []


def test_the_sandboxes_and_the_desk_stay_apart():
    """The sandboxes stand in for Pipedrive and Stripe: they import nothing of the desk,
    and the desk loads them only to register `flask desk sandbox` (app/cli.py)."""
    sandbox_out = sorted(f"{imp.source} -> {imp.target}" for imp in IMPORTS
                         if imp.source.startswith("app.sandbox")
                         and not imp.target.startswith("app.sandbox"))
    desk_in = sorted(f"{imp.source} -> {imp.target}" for imp in IMPORTS
                     if imp.target.startswith("app.sandbox")
                     and not imp.source.startswith("app.sandbox")
                     and not (imp.source == "app.cli" and imp.in_function))
    assert sandbox_out == []
    assert desk_in == []


# --- Private names ------------------------------------------------------------------

# (importer, imported module, name): none. A name another package needs is public.
PRIVATE_ALLOWED: set[tuple[str, str, str]] = set()


def test_no_module_imports_another_packages_private_names():
    found = {(imp.source, imp.target, imp.name) for imp in IMPORTS
             if imp.name and imp.name.startswith("_") and not imp.name.startswith("__")
             and _package(imp.source) != _package(imp.target)}
    assert sorted(found - PRIVATE_ALLOWED) == []
