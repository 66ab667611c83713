"""The typed core keeps its annotations: every public function and method of shared/ and of each
service's domain.py and store.py names the types of its parameters and of its return.

mypy checks these modules with disallow_untyped_defs (pyproject.toml); this test holds the rule
for the public ones by itself, so it survives a change of the mypy configuration, and it runs in
the unit suite, where a new unannotated function is seen first.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
TYPED_CORE = sorted(
    [
        *ROOT.glob("shared/**/*.py"),
        *ROOT.glob("services/*/domain.py"),
        *ROOT.glob("services/*/store.py"),
    ]
)


def _is_public(name):
    """A name without a leading underscore, or a dunder (__init__, __bool__: protocol)."""
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _is_static(function):
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in function.decorator_list)


def _public_functions(tree):
    """(qualified name, node, is a method) of the module's public functions and the public
    methods of its public classes; nested functions are the enclosing function's business."""

    def walk(body, prefix, in_class):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_public(node.name):
                yield f"{prefix}{node.name}", node, in_class
            elif isinstance(node, ast.ClassDef) and _is_public(node.name):
                yield from walk(node.body, f"{prefix}{node.name}.", True)
            elif isinstance(node, (ast.If, ast.Try)):  # definitions under `if TYPE_CHECKING:` ...
                yield from walk(ast.iter_child_nodes(node), prefix, in_class)

    yield from walk(tree.body, "", False)


def _missing(function, is_method):
    """What of the signature is not annotated: parameter names, and "return"."""
    args = function.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if is_method and params and not _is_static(function):
        params = params[1:]  # self / cls
    params += [a for a in (args.vararg, args.kwarg) if a is not None]
    missing = [p.arg for p in params if p.annotation is None]
    if function.returns is None:
        missing.append("return")
    return missing


def unannotated(paths, root=ROOT):
    """["path:line qualified.name (missing: a, return)", ...] over the given files."""
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, function, is_method in _public_functions(tree):
            missing = _missing(function, is_method)
            if missing:
                found.append(
                    f"{path.relative_to(root)}:{function.lineno} {name} "
                    f"(missing: {', '.join(missing)})"
                )
    return found


def test_every_public_function_of_the_typed_core_is_annotated():
    assert len(TYPED_CORE) > 20  # the globs found the modules: not a vacuous pass
    problems = unannotated(TYPED_CORE)
    assert not problems, (
        f"{len(problems)} public function(s) of the typed core without full annotations "
        "(every parameter and the return):\n" + "\n".join(problems)
    )


def test_the_check_sees_what_it_must(tmp_path):
    module = tmp_path / "example.py"
    module.write_text(
        "def typed(a: int, *rest: str, flag: bool = False, **more: object) -> None: ...\n"
        "def untyped(a, b: int): ...\n"
        "def _private(a): ...\n"
        "class Thing:\n"
        "    def __init__(self, value: int) -> None: ...\n"
        "    def method(self, value): ...\n"
        "    @staticmethod\n"
        "    def helper(value: int): ...\n"
        "    def _hidden(self, value): ...\n"
        "class _Private:\n"
        "    def method(self, value): ...\n",
        encoding="utf-8",
    )
    assert unannotated([module], root=tmp_path) == [
        "example.py:2 untyped (missing: a, return)",
        "example.py:6 Thing.method (missing: value, return)",
        "example.py:8 Thing.helper (missing: return)",
    ]
