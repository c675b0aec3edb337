"""Static analysis of the project's Python code: which AWS API calls each entry point can reach."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("glue_jobs", "lambdas")

# Client methods that are not API calls themselves (paginators and waiters are read for the
# operation they name).
NOT_API = frozenset({"close", "can_paginate", "meta", "exceptions"})
# boto3's S3 transfer methods, as the operations they send.
S3_TRANSFER = {
    "upload_file": ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                    "AbortMultipartUpload"),
    "download_file": ("HeadObject", "GetObject"),
    "copy": ("HeadObject", "CopyObject", "CreateMultipartUpload", "UploadPartCopy", "CompleteMultipartUpload",
             "AbortMultipartUpload"),
}
S3_TRANSFER["upload_fileobj"] = S3_TRANSFER["upload_file"]
S3_TRANSFER["download_fileobj"] = S3_TRANSFER["download_file"]

# Where an operation's IAM action is not "<prefix>:<Operation>": the Service Authorization
# Reference's "API operations defined by Amazon S3" table,
# https://docs.amazonaws.cn/service-authorization/latest/reference/list_s3.html (and
# https://docs.aws.amazon.com/IAM/latest/UserGuide/list_amazons3.html). S3 names its actions
# unlike its operations so often that an S3 operation missing here is an error, not a guess.
S3_ACTIONS: dict[str, tuple[str, ...]] = {
    "GetObject": ("s3:GetObject",),
    "HeadObject": ("s3:GetObject",),
    "PutObject": ("s3:PutObject",),
    "DeleteObject": ("s3:DeleteObject",),
    "DeleteObjects": ("s3:DeleteObject",),
    "ListObjectsV2": ("s3:ListBucket",),
    "ListObjects": ("s3:ListBucket",),
    "HeadBucket": ("s3:ListBucket",),
    "ListObjectVersions": ("s3:ListBucketVersions",),
    "ListBuckets": ("s3:ListAllMyBuckets",),
    "CreateMultipartUpload": ("s3:PutObject",),
    "UploadPart": ("s3:PutObject",),
    "CompleteMultipartUpload": ("s3:PutObject",),
    # A part copied server-side reads its source object: PutObject here, GetObject there.
    "UploadPartCopy": ("s3:PutObject", "s3:GetObject"),
    "CopyObject": ("s3:PutObject", "s3:GetObject"),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload",),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads",),
    "ListParts": ("s3:ListMultipartUploadParts",),
    "GetObjectTagging": ("s3:GetObjectTagging",),
    "PutObjectTagging": ("s3:PutObjectTagging",),
}


@dataclass(frozen=True)
class ApiCall:
    """One operation on one service, where the code sends it."""

    service: str  # boto3 service name
    operation: str  # API operation, as in the service model (PascalCase)
    path: str  # relative to the project root
    line: int
    function: str  # module:qualname of the code that sends it

    def where(self) -> str:
        return f"{self.path}:{self.line} ({self.function})"


@dataclass(frozen=True)
class Problem:
    """A call the analysis cannot map to an IAM action: it must be made analysable."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Func:
    key: str  # module:qualname
    module: str
    node: ast.AST  # FunctionDef, AsyncFunctionDef or Module
    cls: str | None  # module:Class for methods
    env: str  # the key whose variables this function shares (nested functions share their parent's)
    params: list[str] = field(default_factory=list)
    local_defs: dict[str, str] = field(default_factory=dict)  # nested def name -> key
    globals_declared: set[str] = field(default_factory=set)


@dataclass
class Klass:
    key: str
    module: str
    node: ast.ClassDef
    methods: dict[str, str] = field(default_factory=dict)  # name -> Func key
    fields: list[str] = field(default_factory=list)  # annotated class attributes (dataclass fields)
    bases: list[ast.expr] = field(default_factory=list)


@dataclass
class Module:
    name: str
    path: str
    tree: ast.Module
    is_package: bool
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # alias -> (module, attr)
    defs: dict[str, str] = field(default_factory=dict)  # top-level name -> Func or Klass key
    constants: dict[str, str] = field(default_factory=dict)  # NAME = "literal"


@cache
def _service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


@cache
def _operations(service: str) -> dict[str, str]:
    """snake_case method name -> operation name, as boto3 generates the client's methods."""
    from botocore import xform_name

    return {xform_name(op): op for op in _service_model(service).operation_names}


def _waiter_operation(service: str, waiter: str) -> str | None:
    import botocore.session
    from botocore.waiter import xform_name

    model = botocore.session.get_session().get_waiter_model(service)
    names = {xform_name(n): n for n in model.waiter_names}
    return str(model.get_waiter(names[waiter]).operation) if waiter in names else None


def iam_actions(service: str, operation: str) -> tuple[str, ...]:
    """The IAM actions one API operation needs (see the Service Authorization Reference)."""
    if service == "s3":
        if operation not in S3_ACTIONS:
            raise KeyError(f"S3 operation {operation} has no IAM action in S3_ACTIONS: add it from "
                           "https://docs.amazonaws.cn/service-authorization/latest/reference/list_s3.html")
        return S3_ACTIONS[operation]
    prefix = _service_model(service).signing_name
    return (f"{prefix}:{operation}",)


def _grow(slot: set[str], value: set[str]) -> bool:
    """Adds what flows into a slot; whether it grew (the analysis stops when nothing does)."""
    before = len(slot)
    slot |= value
    return len(slot) != before


class Program:
    """The project's modules, their functions and what flows between them (flow-insensitive:
    every assignment to a name adds to what the name may hold)."""

    def __init__(self, sources: dict[str, tuple[str, str]]) -> None:
        """sources: module name -> (path shown in messages, source text)."""
        self.modules: dict[str, Module] = {}
        self.funcs: dict[str, Func] = {}
        self.classes: dict[str, Klass] = {}
        self.methods_by_name: dict[str, list[str]] = {}
        for name, (path, text) in sources.items():
            tree = ast.parse(text, filename=path)
            self.modules[name] = Module(name, path, tree, path.endswith("__init__.py"))
        for module in self.modules.values():
            self._index(module)
        # abstract state: which services' clients a variable / attribute / return may hold
        self.env: dict[tuple[str, str], set[str]] = {}
        self.attrs: dict[tuple[str, str], set[str]] = {}
        self.returns: dict[str, set[str]] = {}
        self.calls: dict[str, set[ApiCall]] = {}
        self.problems: set[Problem] = set()
        self.edges: dict[str, set[str]] = {}
        # Calls of a method on an object of unknown class, to every method of that name: such a
        # method can only run where its class's module was imported, so `reachable` follows
        # these edges only once that module is reached from the same entry point.
        self.name_edges: dict[str, set[str]] = {}
        self._solve()

    @classmethod
    def from_project(cls, root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> Program:
        sources: dict[str, tuple[str, str]] = {}
        for package in packages:
            for path in sorted((root / package).rglob("*.py")):
                rel = path.relative_to(root)
                parts = list(rel.with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                sources[".".join(parts)] = (str(rel), path.read_text(encoding="utf-8"))
        return cls(sources)

    # ---- indexing -------------------------------------------------------------------------

    def _index(self, module: Module) -> None:
        top = Func(f"{module.name}:<module>", module.name, module.tree, None, f"{module.name}:<module>")
        self.funcs[top.key] = top
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        module.imports[alias.asname] = (alias.name, None)
                    else:
                        root = alias.name.split(".")[0]
                        module.imports[root] = (root, None)
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(module, node.module, node.level)
                for alias in node.names:
                    module.imports[alias.asname or alias.name] = (base, alias.name)
        for stmt in module.tree.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                module.defs[stmt.name] = self._index_function(module, stmt, f"{module.name}:{stmt.name}", None,
                                                              None)
            elif isinstance(stmt, ast.ClassDef):
                module.defs[stmt.name] = self._index_class(module, stmt)
            elif isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) \
                    and isinstance(stmt.value.value, str):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        module.constants[target.id] = stmt.value.value

    def _absolute(self, module: Module, name: str | None, level: int) -> str:
        if not level:
            return name or ""
        parts = module.name.split(".")
        base = parts if module.is_package else parts[:-1]
        base = base[:len(base) - (level - 1)]
        return ".".join([*base, name] if name else base)

    def _index_class(self, module: Module, node: ast.ClassDef) -> str:
        key = f"{module.name}:{node.name}"
        klass = Klass(key, module.name, node, bases=list(node.bases))
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                fkey = self._index_function(module, stmt, f"{key}.{stmt.name}", key, None)
                klass.methods[stmt.name] = fkey
                self.methods_by_name.setdefault(stmt.name, []).append(fkey)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                klass.fields.append(stmt.target.id)
        self.classes[key] = klass
        return key

    def _index_function(self, module: Module, node: ast.FunctionDef | ast.AsyncFunctionDef, key: str,
                        cls: str | None, env: str | None) -> str:
        args = node.args
        params = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
        func = Func(key, module.name, node, cls, env or key, params)
        self.funcs[key] = func
        for inner in self._own_nodes(node):
            if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                func.local_defs[inner.name] = self._index_function(module, inner, f"{key}.{inner.name}", None,
                                                                   func.env)
            elif isinstance(inner, ast.Global):
                func.globals_declared.update(inner.names)
        return key

    @staticmethod
    def _own_nodes(node: ast.AST) -> Iterator[ast.AST]:
        """The nodes of a function or module body, not descending into nested defs or classes
        (those are their own functions), but yielding the nested def nodes themselves."""
        stack: list[ast.AST] = list(ast.iter_child_nodes(node)) if not isinstance(node, ast.Module) \
            else list(node.body)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            # decorators and defaults run in the enclosing scope; the body is what runs on a call
            stack = list(node.body)
        while stack:
            child = stack.pop()
            yield child
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                stack.extend(child.decorator_list)
                stack.extend(d for d in child.args.defaults if d is not None)
                stack.extend(d for d in child.args.kw_defaults if d is not None)
                continue
            if isinstance(child, ast.ClassDef):
                stack.extend(child.decorator_list)
                stack.extend(child.bases)
                continue
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                stack.extend(child.orelse)  # imports for the type checker only never run
                continue
            stack.extend(ast.iter_child_nodes(child))

    # ---- name resolution ------------------------------------------------------------------

    def resolve_symbol(self, module_name: str, name: str, seen: frozenset[tuple[str, str]] = frozenset()) -> str | None:
        """A module-level name as 'module <name>', a Func key or a Klass key, following imports."""
        if (module_name, name) in seen:
            return None
        seen = seen | {(module_name, name)}
        module = self.modules.get(module_name)
        if module is None:
            return None
        if name in module.defs:
            return module.defs[name]
        if name in module.imports:
            target, attr = module.imports[name]
            if attr is None:
                return f"module {target}" if target in self.modules or target == "boto3" else f"external {target}"
            if f"{target}.{attr}" in self.modules:
                return f"module {target}.{attr}"
            if target in self.modules:
                return self.resolve_symbol(target, attr, seen)
            return f"external {target}.{attr}"
        return None

    def _resolve_expr(self, func: Func, expr: ast.expr) -> str | None:
        """What a Name or module.attr expression denotes: 'module x', a Func key, a Klass key."""
        if isinstance(expr, ast.Name):
            chain: Func | None = func
            while chain is not None:
                if expr.id in chain.local_defs:
                    return chain.local_defs[expr.id]
                chain = self.funcs.get(chain.env) if chain.env != chain.key else None
            return self.resolve_symbol(func.module, expr.id)
        if isinstance(expr, ast.Attribute):
            base = self._resolve_expr(func, expr.value)
            if base and base.startswith("module "):
                mod = base.removeprefix("module ")
                if f"{mod}.{expr.attr}" in self.modules:
                    return f"module {mod}.{expr.attr}"
                return self.resolve_symbol(mod, expr.attr) if mod in self.modules else f"external {mod}.{expr.attr}"
            if base in self.classes and expr.attr in self.classes[base].methods:
                return self.classes[base].methods[expr.attr]
        return None

    def _method(self, cls: str, name: str) -> str | None:
        klass = self.classes.get(cls)
        while klass is not None:
            if name in klass.methods:
                return klass.methods[name]
            bases = [self._resolve_expr(self.funcs[f"{klass.module}:<module>"], b) for b in klass.bases]
            klass = next((self.classes[b] for b in bases if b in self.classes), None)
        return None

    # ---- what a call denotes --------------------------------------------------------------

    def _is_client_factory(self, func: Func, call: ast.Call) -> bool:
        """boto3.client(...) / boto3.Session(...).client(...) / session.client("svc") / boto3.resource."""
        f = call.func
        if not (isinstance(f, ast.Attribute) and f.attr in ("client", "resource")):
            return False
        base = self._resolve_expr(func, f.value)
        if base in ("module boto3", "external boto3.session") or (base or "").startswith("external boto3"):
            return True
        text = ast.unparse(f.value).lower()
        if "session" in text:
            return True
        # someone else's object with a client(...) taking a service name, and none of ours
        return bool(call.args or any(k.arg == "service_name" for k in call.keywords)) \
            and f.attr not in self.methods_by_name

    def _service_of(self, func: Func, call: ast.Call) -> str | None:
        arg: ast.expr | None = call.args[0] if call.args else next(
            (k.value for k in call.keywords if k.arg == "service_name"), None)
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
        if isinstance(arg, ast.Name) and arg.id in self.modules[func.module].constants:
            return self.modules[func.module].constants[arg.id]
        return None

    def _callees(self, func: Func, call: ast.Call) -> list[tuple[str, int]]:
        """Functions a call may run, each with how many leading parameters are bound implicitly
        (self); a dataclass without __init__ appears as 'class <key>'."""
        f = call.func
        target = self._resolve_expr(func, f)
        if target in self.funcs:  # a function, or Class.method called with its instance explicitly
            return [(target, 0)]
        if target in self.classes:
            init = self._method(target, "__init__")
            out = [(init, 1)] if init else [(f"class {target}", 0)]
            post = self._method(target, "__post_init__")
            return out + ([(post, 1)] if post else [])
        if isinstance(f, ast.Attribute) and target is None:
            if isinstance(f.value, ast.Name) and f.value.id in ("self", "cls") and func.cls:
                own = self._method(func.cls, f.attr)
                if own:
                    return [(own, 1)]
            if self.services(func, f.value):
                return []  # an operation on an AWS client, not one of our methods
            # an object of unknown class: any of our methods of that name may run
            return [(m, 1) for m in self.methods_by_name.get(f.attr, [])]
        return []

    def _by_name(self, func: Func, call: ast.Call) -> bool:
        """Whether `_callees` could only match the call's method by its name."""
        f = call.func
        if not isinstance(f, ast.Attribute) or self._resolve_expr(func, f) is not None:
            return False
        if isinstance(f.value, ast.Name) and f.value.id in ("self", "cls") and func.cls \
                and self._method(func.cls, f.attr):
            return False
        return not self.services(func, f.value)

    # ---- abstract evaluation --------------------------------------------------------------

    def _lookup(self, func: Func, name: str) -> set[str]:
        if name in func.globals_declared:
            return self.env.get((f"{func.module}:<module>", name), set())
        got = self.env.get((func.env, name))
        if got:
            return got
        return self.env.get((f"{func.module}:<module>", name), set())

    def services(self, func: Func, expr: ast.expr | None) -> set[str]:
        """Which services' clients an expression may evaluate to."""
        if expr is None:
            return set()
        if isinstance(expr, ast.Call):
            if self._is_client_factory(func, expr):
                service = self._service_of(func, expr)
                return {service} if service else set()
            out: set[str] = set()
            for callee, _ in self._callees(func, expr):
                out |= self.returns.get(callee, set())
            return out
        if isinstance(expr, ast.BoolOp):
            return set().union(*(self.services(func, v) for v in expr.values))
        if isinstance(expr, ast.IfExp):
            return self.services(func, expr.body) | self.services(func, expr.orelse)
        if isinstance(expr, ast.NamedExpr):
            return self.services(func, expr.value)
        if isinstance(expr, ast.Name):
            return self._lookup(func, expr.id)
        if isinstance(expr, ast.Attribute):
            if isinstance(expr.value, ast.Name) and expr.value.id == "self" and func.cls:
                return self.attrs.get((func.cls, expr.attr), set())
            # another object's attribute: whatever any class keeps under that name
            return set().union(*(v for (_, a), v in self.attrs.items() if a == expr.attr))
        return set()

    def _assign(self, func: Func, target: ast.expr, value: set[str]) -> bool:
        if not value:
            return False
        if isinstance(target, ast.Name):
            scope = f"{func.module}:<module>" if target.id in func.globals_declared else func.env
            slot = self.env.setdefault((scope, target.id), set())
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                and target.value.id == "self" and func.cls:
            slot = self.attrs.setdefault((func.cls, target.attr), set())
        else:
            return False
        return _grow(slot, value)

    def _assign_pair(self, func: Func, target: ast.expr, value: ast.expr) -> bool:
        if isinstance(target, ast.Tuple | ast.List) and isinstance(value, ast.Tuple | ast.List) \
                and len(target.elts) == len(value.elts):
            return any([self._assign_pair(func, t, v) for t, v in zip(target.elts, value.elts, strict=True)])
        return self._assign(func, target, self.services(func, value))

    def _bind(self, func: Func, call: ast.Call) -> bool:
        """Arguments flow into the parameters of every function the call may run."""
        changed = False
        for callee, skip in self._callees(func, call):
            if callee.startswith("class "):  # a dataclass: keyword and positional fields
                klass = self.classes[callee.removeprefix("class ")]
                pairs = list(zip(klass.fields, call.args, strict=False))
                pairs += [(k.arg, k.value) for k in call.keywords if k.arg in klass.fields]
                for name, arg in pairs:
                    changed |= _grow(self.attrs.setdefault((klass.key, name), set()), self.services(func, arg))
                continue
            target = self.funcs[callee]
            params = target.params[skip:]
            pairs2 = list(zip(params, call.args, strict=False))
            pairs2 += [(k.arg, k.value) for k in call.keywords if k.arg in target.params]
            for name, arg in pairs2:
                changed |= _grow(self.env.setdefault((target.env, name), set()), self.services(func, arg))
        return changed

    def _step(self, func: Func) -> bool:
        changed = False
        for node in self._own_nodes(func.node):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    changed |= self._assign_pair(func, target, node.value)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                changed |= self._assign_pair(func, node.target, node.value)
            elif isinstance(node, ast.NamedExpr):
                changed |= self._assign(func, node.target, self.services(func, node.value))
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                changed |= self._assign(func, node.optional_vars, self.services(func, node.context_expr))
            elif isinstance(node, ast.Return) and not isinstance(func.node, ast.Module):
                changed |= _grow(self.returns.setdefault(func.key, set()), self.services(func, node.value))
            elif isinstance(node, ast.Call):
                changed |= self._bind(func, node)
        return changed

    def _solve(self) -> None:
        for _ in range(50):
            if not any([self._step(func) for func in list(self.funcs.values())]):
                break
        else:  # pragma: no cover
            raise RuntimeError("the client-flow analysis did not settle")
        for func in self.funcs.values():
            self._collect(func)

    # ---- API calls and the call graph -----------------------------------------------------

    def _collect(self, func: Func) -> None:
        module = self.modules[func.module]
        calls = self.calls.setdefault(func.key, set())
        edges = self.edges.setdefault(func.key, set())
        for node in self._own_nodes(func.node):
            if isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
                target = self._resolve_expr(func, node)
                if target in self.funcs:
                    edges.add(target)  # called, or passed on as a callback
                elif target in self.classes:
                    edges.update(k for k in (self._method(target, "__init__"), self._method(target, "__post_init__"))
                                 if k)
                elif target and target.startswith("module "):
                    name = target.removeprefix("module ")
                    if name in self.modules:
                        edges.add(f"{name}:<module>")
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and isinstance(func.node, ast.Module) \
                    and node.decorator_list:
                edges.add(module.defs.get(node.name, ""))  # registered by its decorator at import time
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= self._imported_modules(module, node)
            if not isinstance(node, ast.Call):
                continue
            callees = {k for k, _ in self._callees(func, node) if not k.startswith("class ")}
            if self._by_name(func, node):
                self.name_edges.setdefault(func.key, set()).update(callees)
            else:
                edges.update(callees)
            if self._is_client_factory(func, node):
                service = self._service_of(func, node)
                if service is None:
                    self.problems.add(Problem(module.path, node.lineno,
                                              f"AWS client service {ast.unparse(node.args[0]) if node.args else '?'}"
                                              " is not a literal: name the service so its grants can be checked"))
                elif isinstance(node.func, ast.Attribute) and node.func.attr == "resource":
                    self.problems.add(Problem(module.path, node.lineno, f"boto3.resource({service!r}): resource "
                                              "objects are not analysed; use a client"))
                continue
            f = node.func
            if isinstance(f, ast.Call) and isinstance(f.func, ast.Name) and f.func.id == "getattr" and f.args \
                    and self.services(func, f.args[0]):
                self.problems.add(Problem(module.path, node.lineno, "getattr() on an AWS client: the operation "
                                          "cannot be read from the code"))
                continue
            if not isinstance(f, ast.Attribute):
                continue
            for service in sorted(self.services(func, f.value)):
                for operation in self._operations_of(service, f.attr, node, module):
                    calls.add(ApiCall(service, operation, module.path, node.lineno, func.key))
        edges.discard("")
        edges.discard(func.key)

    def _imported_modules(self, module: Module, node: ast.Import | ast.ImportFrom) -> set[str]:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            base = self._absolute(module, node.module, node.level)
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        out: set[str] = set()
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                if ".".join(parts[:i]) in self.modules:
                    out.add(f"{'.'.join(parts[:i])}:<module>")
        return out

    def _operations_of(self, service: str, method: str, call: ast.Call, module: Module) -> list[str]:
        if method in NOT_API:
            return []
        ops = _operations(service)
        if method in ("get_paginator", "get_waiter", "generate_presigned_url"):
            arg = call.args[0] if call.args else next((k.value for k in call.keywords
                                                       if k.arg in ("operation_name", "waiter_name",
                                                                    "ClientMethod")), None)
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                self.problems.add(Problem(module.path, call.lineno, f"{service} {method}() of a name that is not "
                                          "a literal: the operation cannot be read from the code"))
                return []
            name = arg.value
            if method == "get_waiter":
                operation = _waiter_operation(service, name)
                if operation is None:
                    self.problems.add(Problem(module.path, call.lineno, f"{service} has no waiter {name!r}"))
                    return []
                return [operation]
            method = name
        if method in ops:
            return [ops[method]]
        if service == "s3" and method in S3_TRANSFER:
            return list(S3_TRANSFER[method])
        self.problems.add(Problem(module.path, call.lineno, f"{method}() is not an operation of the {service} "
                                  "client (botocore's service model)"))
        return []

    # ---- per entry point ------------------------------------------------------------------

    def reachable(self, roots: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        by_name: set[str] = set()  # methods called by name only, waiting for their module
        stack = [r for r in roots if r in self.funcs]
        while stack:
            while stack:
                key = stack.pop()
                if key in seen:
                    continue
                seen.add(key)
                func = self.funcs[key]
                stack.append(f"{func.module}:<module>")  # running a function means its module was imported
                stack.extend(e for e in self.edges.get(key, ()) if e in self.funcs)
                by_name |= self.name_edges.get(key, set())
            # An instance exists only where its class's module was imported in this process.
            stack = [m for m in by_name - seen if f"{self.funcs[m].module}:<module>" in seen]
        return seen

    def entry_calls(self, roots: Iterable[str]) -> set[ApiCall]:
        return set().union(*(self.calls.get(k, set()) for k in self.reachable(roots)))

    def lambda_roots(self, handler: str) -> list[str]:
        """lambdas.x.handler.handler -> the handler function (its module is imported first)."""
        module, _, function = handler.rpartition(".")
        if module not in self.modules:
            raise KeyError(f"handler {handler}: no module {module} in {', '.join(PACKAGES)}")
        key = self.modules[module].defs.get(function)
        if key is None:
            raise KeyError(f"handler {handler}: {module} defines no {function}")
        return [f"{module}:<module>", key]

    def script_roots(self, module: str) -> list[str]:
        """A script run as __main__: its module body, with `if __name__ == "__main__":` taken."""
        return [f"{module}:<module>"]

    def catches_missing_key(self, call: ApiCall) -> bool:
        """Whether the function that sends an S3 read tells a missing key apart (NoSuchKey/404)."""
        node = self.funcs[call.function].node
        return any(isinstance(n, ast.Constant) and n.value in ("NoSuchKey", "404", "NotFound")
                   for n in ast.walk(node))
