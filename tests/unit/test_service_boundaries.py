"""docs/ARCHITECTURE.md rule 1: no service imports another service's package."""

import ast
import pathlib

SERVICES = pathlib.Path(__file__).resolve().parents[2] / "services"


def test_no_service_imports_another():
    crossings = []
    for service in (p for p in SERVICES.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for source in service.rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                names = (
                    [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "services" and len(parts) > 1 and parts[1] != service.name:
                        crossings.append(f"{source.relative_to(SERVICES)} imports {name}")
    assert not crossings, crossings
