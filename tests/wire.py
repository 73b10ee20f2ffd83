"""Wire evidence: check HTTP bodies and requests against the official Genesys Python SDK.

Shared by ``tests/sandbox/test_sdk_compat.py`` (answers the SDK parses) and
``tests/integration/test_wire_evidence.py`` (requests the product sends, recorded by the
sandbox, ``genesys_sandbox.wire``).  Everything is read from the installed SDK
(``purecloudplatformclientv2`` 269.0.0, a dev dependency), so any operation and any model works,
not a list of today's calls:

* :func:`sdk_operations` parses every ``*Api`` method of the SDK: HTTP method, path template,
  path / query / header parameters (JSON names), the body parameter's type and which
  parameters are ``(required)`` (from the method docstrings).  ``POST /oauth/token`` is the
  SDK's ``ApiClient.get_client_credentials_token`` (form ``grant_type``, Basic auth).
* :class:`Walker` walks a JSON value against an SDK type: every key must be in the model's
  ``attribute_map`` (JSON names), values must match ``swagger_types`` (str, int, float, bool,
  ISO datetimes / dates, ``list[...]``, ``dict(str, ...)``, nested models, ``object``), enum values
  must be in the setter's ``allowed_values`` with exact case (the SDK's own setters compare
  case-insensitively; Genesys does not promise that), and, when ``required`` is given, every
  field the SDK docs mark required (no ``[optional]``) must be present and not null.
* Required-ness: the 269.0.0 wheel carries no docs and its models do not expose it, so it
  comes from ``tests/wire_required.json``, extracted from the SDK's model docs
  (``build/docs/<Model>.md`` of MyPureCloud/platform-client-sdk-python at 257.1.0, the newest
  docs available here; keys are mapped to 269's JSON names).  A model the docs do not cover
  is counted in ``required_unknown``, never guessed.  Regenerate with
  ``python -m tests.wire <docs dir>``.
* :func:`check_requests` matches each recorded request to an operation and walks it.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from dateutil.parser import isoparse

__all__ = [
    "PRIMITIVES",
    "Operation",
    "Walker",
    "WireReport",
    "check_requests",
    "match_operation",
    "required_table",
    "sdk_models",
    "sdk_operations",
]

PRIMITIVES = {"str", "int", "float", "bool", "datetime", "date", "object"}
REQUIRED_FILE = Path(__file__).with_name("wire_required.json")
_SDK_PACKAGE = "PureCloudPlatformClientV2"


def sdk_models() -> Any:
    """The SDK's ``models`` package."""
    return importlib.import_module(_SDK_PACKAGE).models


# --------------------------------------------------------------------------- walker


@functools.cache
def _allowed_values(model: type, attr: str) -> tuple[str, ...] | None:
    prop = getattr(model, attr, None)
    setter = getattr(prop, "fset", None)
    if setter is None:
        return None
    found = re.search(r"allowed_values = (\[.*?\])", inspect.getsource(setter))
    return tuple(ast.literal_eval(found.group(1))) if found else None


@functools.cache
def _model_maps(model: type) -> tuple[dict[str, str], dict[str, str]]:
    """(JSON key -> attribute, attribute -> swagger type) of an SDK model."""
    instance = model()
    by_key = {key: attr for attr, key in instance.attribute_map.items()}
    return by_key, dict(instance.swagger_types)


@dataclass
class Walker:
    """Walks JSON against SDK types; problems are strings ``<path>: <what is wrong>``."""

    models: Any
    required: Mapping[str, Sequence[str]] | None = None
    legacy_keys: frozenset[tuple[str, str]] = frozenset()
    problems: list[str] = field(default_factory=list)
    bodies: Counter[str] = field(default_factory=Counter)
    keys_checked: int = 0
    enums_checked: int = 0
    required_checked: int = 0
    required_unknown: set[str] = field(default_factory=set)
    legacy_seen: set[tuple[str, str]] = field(default_factory=set)

    def walk(self, data: Any, type_name: str, path: str) -> None:
        if data is None:
            return
        if match := re.fullmatch(r"list\[(.*)\]", type_name):
            if not isinstance(data, list):
                self.problems.append(f"{path}: expected a list for {type_name}")
                return
            for i, item in enumerate(data):
                self.walk(item, match.group(1), f"{path}[{i}]")
            return
        if match := re.fullmatch(r"dict\(([^,]*), (.*)\)", type_name):
            if not isinstance(data, dict):
                self.problems.append(f"{path}: expected an object for {type_name}")
                return
            for key, value in data.items():
                self.walk(value, match.group(2), f"{path}.{key}")
            return
        if type_name in PRIMITIVES:
            self._primitive(data, type_name, path)
            return
        self._model(data, type_name, path)

    def _primitive(self, data: Any, type_name: str, path: str) -> None:
        ok = {
            "str": isinstance(data, str),
            "int": isinstance(data, int) and not isinstance(data, bool),
            "float": isinstance(data, int | float) and not isinstance(data, bool),
            "bool": isinstance(data, bool),
            "object": True,
        }.get(type_name)
        if type_name in ("datetime", "date"):
            try:
                isoparse(data)
                ok = True
            except (TypeError, ValueError):
                ok = False
        if not ok:
            self.problems.append(f"{path}: {data!r} is not a {type_name}")

    def _model(self, data: Any, type_name: str, path: str) -> None:
        model = getattr(self.models, type_name, None)
        if not isinstance(model, type):
            self.problems.append(f"{path}: the SDK has no model {type_name}")
            return
        if not isinstance(data, dict):
            self.problems.append(f"{path}: expected an object for {type_name}")
            return
        by_key, types = _model_maps(model)
        for key, value in data.items():
            self.keys_checked += 1
            if (type_name, key) in self.legacy_keys:
                self.legacy_seen.add((type_name, key))
                continue
            if key not in by_key:
                self.problems.append(f"{path}.{key}: {type_name} has no such key")
                continue
            attr = by_key[key]
            allowed = _allowed_values(model, attr)
            if allowed is not None and value is not None:
                self.enums_checked += 1
                if not isinstance(value, str) or value not in allowed:
                    self.problems.append(f"{path}.{key}: {value!r} not in {list(allowed)}")
                    continue
            self.walk(value, types[attr], f"{path}.{key}")
        if self.required is not None:
            self._required(data, type_name, path)

    def _required(self, data: dict[str, Any], type_name: str, path: str) -> None:
        if type_name not in self.required:  # type: ignore[operator]
            self.required_unknown.add(type_name)
            return
        for key in self.required[type_name]:  # type: ignore[index]
            self.required_checked += 1
            if data.get(key) is None:
                self.problems.append(f"{path}.{key}: required by {type_name}, missing")


@functools.cache
def required_table(path: Path = REQUIRED_FILE) -> dict[str, tuple[str, ...]]:
    """Model -> its required JSON keys, for every model the SDK docs cover (may be empty)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {name: tuple(keys.split()) for name, keys in data["models"].items()}


_DOC_ROW = re.compile(r"^\| \*\*(\w+)\*\* \| .* \| (.*?)\|\s*$")


def required_from_docs(docs_dir: Path) -> dict[str, str]:
    """Parse ``<Model>.md`` property tables: required = no ``[optional]`` in Notes.

    Attribute names are mapped to the installed SDK's JSON names; an attribute the installed
    model no longer has is dropped.  Models the installed SDK lacks are skipped.
    """
    models = sdk_models()
    table: dict[str, str] = {}
    for doc in sorted(docs_dir.glob("*.md")):
        text = doc.read_text(encoding="utf-8")
        model = getattr(models, doc.stem, None)
        if "## Properties" not in text or not isinstance(model, type):
            continue
        attribute_map = model().attribute_map
        keys = []
        for line in text.splitlines():
            row = _DOC_ROW.match(line)
            if row and "[optional]" not in row.group(2) and row.group(1) in attribute_map:
                keys.append(attribute_map[row.group(1)])
        table[doc.stem] = " ".join(keys)
    return table


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    path_params: tuple[str, ...]
    query: Mapping[str, str]
    """JSON query name -> declared type (``bool``, ``int``, ``str``, ``list[str]`` ...)."""
    required_query: frozenset[str]
    body_type: str | None
    body_required: bool
    form: frozenset[str] = frozenset()
    auth_scheme: str = "Bearer"

    @property
    def pattern(self) -> re.Pattern[str]:
        return _template_regex(self.path)


@functools.cache
def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts if p))


_PARAM_DOC = re.compile(r"^\s*:param (.+?) (\w+):(.*)$", re.M)


def _parse_method(api: str, chunk: str) -> Operation | None:
    name = re.match(r"(\w+)\(", chunk)
    path = re.search(r"resource_path = '([^']+)'", chunk)
    method = re.search(r"call_api\(resource_path, '(\w+)'", chunk)
    if not (name and path and method):
        return None
    docs = {p: (t, "(required)" in rest) for t, p, rest in _PARAM_DOC.findall(chunk)}
    query = {}
    required_query = set()
    for json_name, py_name in re.findall(r"query_params\['(\w+)'\] = params\['(\w+)'\]", chunk):
        query[json_name] = docs.get(py_name, ("str", False))[0]
        if docs.get(py_name, ("", False))[1]:
            required_query.add(json_name)
    has_body = "body_params = params['body']" in chunk
    body_type, body_required = docs.get("body", (None, False)) if has_body else (None, False)
    return Operation(
        name=f"{api}.{name.group(1)}",
        method=method.group(1),
        path=path.group(1).replace("{format}", "json"),
        path_params=tuple(re.findall(r"path_params\['(\w+)'\]", chunk)),
        query=query,
        required_query=frozenset(required_query),
        body_type=body_type,
        body_required=body_required,
    )


LOGIN_OPERATIONS = (
    Operation(
        name="ApiClient.get_client_credentials_token",
        method="POST",
        path="/oauth/token",
        path_params=(),
        query={},
        required_query=frozenset(),
        body_type=None,
        body_required=False,
        form=frozenset({"grant_type"}),
        auth_scheme="Basic",
    ),
)


@functools.cache
def sdk_operations() -> tuple[Operation, ...]:
    """Every operation of every ``*Api`` class in the installed SDK, plus the token grant."""
    package = importlib.import_module(_SDK_PACKAGE)
    apis_dir = Path(package.__file__).parent / "apis"
    found: list[Operation] = list(LOGIN_OPERATIONS)
    for module in sorted(apis_dir.glob("*_api.py")):
        source = module.read_text(encoding="utf-8")
        api = re.search(r"^class (\w+)\(", source, re.M)
        for chunk in source.split("\n    def ")[1:]:
            op = _parse_method(api.group(1) if api else module.stem, chunk)
            if op is not None:
                found.append(op)
    return tuple(found)


@functools.cache
def _by_method() -> dict[str, list[Operation]]:
    index: dict[str, list[Operation]] = {}
    for op in sdk_operations():
        index.setdefault(op.method, []).append(op)
    for ops in index.values():  # the most literal template first: /contacts/bulk before /{id}
        ops.sort(key=lambda o: (o.path.count("{"), -len(o.path)))
    return index


def match_operation(method: str, path: str) -> Operation | None:
    """The SDK operation for (method, raw path), or None."""
    for op in _by_method().get(method.upper(), []):
        if op.pattern.fullmatch(path):
            return op
    return None


# --------------------------------------------------------------------------- requests


@dataclass
class WireReport:
    walker: Walker
    requests: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    bodies_walked: int = 0
    query_checked: int = 0

    @property
    def problems(self) -> list[str]:
        return self.walker.problems

    def summary(self, title: str = "wire evidence") -> str:
        w = self.walker
        lines = [
            f"{title}:",
            f"  requests: {self.requests}",
            f"  distinct operations: {len(self.operations)}",
            *(f"    {n} x{c}" for n, c in sorted(self.operations.items())),
            f"  bodies walked: {self.bodies_walked} "
            f"({', '.join(f'{k} x{v}' for k, v in sorted(w.bodies.items()))})",
            f"  keys checked: {w.keys_checked}, enum values checked: {w.enums_checked}, "
            f"required fields checked: {w.required_checked}, "
            f"query parameters checked: {self.query_checked}",
            f"  models without required-ness in the SDK docs: {sorted(w.required_unknown)}",
            f"  problems: {len(w.problems)}",
            *(f"    {p}" for p in w.problems),
        ]
        return "\n".join(lines)


_BOOL = {"true", "false"}


def _query_value_ok(value: str, declared: str) -> bool:
    if declared == "bool":
        return value.lower() in _BOOL
    if declared == "int":
        return re.fullmatch(r"-?\d+", value) is not None
    if declared in ("datetime", "date"):
        try:
            isoparse(value)
        except ValueError:
            return False
    return True


def check_request(report: WireReport, request: Mapping[str, Any]) -> None:
    """Match one recorded request (``genesys_sandbox.wire`` shape) and walk it."""
    walker = report.walker
    report.requests += 1
    method, path = str(request["method"]), str(request["path"])
    where = f"#{request.get('seq', report.requests)} {method} {path}"
    op = match_operation(method, path)
    if op is None:
        walker.problems.append(f"{where}: no SDK operation has this method and path")
        return
    report.operations[f"{op.method} {op.path} ({op.name})"] += 1
    scheme = request.get("auth_scheme")
    if scheme != op.auth_scheme:
        walker.problems.append(f"{where}: authorization {scheme!r}, the SDK sends {op.auth_scheme}")
    names = [str(k) for k, _ in request.get("query") or []]
    for name, value in request.get("query") or []:
        report.query_checked += 1
        if name not in op.query:
            walker.problems.append(f"{where}: query parameter {name!r} not in {op.name}")
        elif not _query_value_ok(str(value), op.query[name]):
            walker.problems.append(f"{where}: query {name}={value!r} is not a {op.query[name]}")
    for name in sorted(op.required_query - set(names)):
        walker.problems.append(f"{where}: required query parameter {name!r} missing")
    if op.form:
        _check_form(walker, where, op, request)
        return
    has_body = bool(request.get("has_body"))
    body = request.get("json")
    if has_body and body is None and request.get("body_text") is not None:
        walker.problems.append(f"{where}: the body is not JSON ({request.get('content_type')})")
        return
    if op.body_type is None:
        if has_body and body is not None:
            walker.problems.append(f"{where}: {op.name} takes no body, one was sent")
        return
    if body is None:
        if op.body_required:
            walker.problems.append(f"{where}: {op.name} requires a {op.body_type} body")
        return
    if "application/json" not in str(request.get("content_type") or ""):
        walker.problems.append(f"{where}: JSON body sent as {request.get('content_type')!r}")
    report.bodies_walked += 1
    walker.bodies[op.body_type] += 1
    walker.walk(body, op.body_type, f"{where} {op.body_type}")


def _check_form(walker: Walker, where: str, op: Operation, request: Mapping[str, Any]) -> None:
    fields = dict(parse_qsl(str(request.get("body_text") or ""), keep_blank_values=True))
    for name in sorted(set(fields) - op.form):
        walker.problems.append(f"{where}: form field {name!r} not sent by {op.name}")
    for name in sorted(op.form - set(fields)):
        walker.problems.append(f"{where}: form field {name!r} missing")
    if fields.get("grant_type", "client_credentials") != "client_credentials":
        walker.problems.append(f"{where}: grant_type {fields['grant_type']!r}")


def check_requests(
    requests: Iterable[Mapping[str, Any]], *, required: Mapping[str, Sequence[str]] | None = None
) -> WireReport:
    """Walk every recorded request; ``required`` defaults to :func:`required_table`."""
    table = required_table() if required is None else required
    report = WireReport(Walker(sdk_models(), required=table))
    for request in requests:
        check_request(report, request)
    return report


if __name__ == "__main__":  # python -m tests.wire <SDK docs dir> [source note]
    docs_dir = Path(sys.argv[1])
    note = sys.argv[2] if len(sys.argv) > 2 else str(docs_dir)
    table = required_from_docs(docs_dir)
    lines = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(table.items()))
    REQUIRED_FILE.write_text(
        "{\n"
        f' "source": {json.dumps(note)},\n'
        ' "rule": "required = the property row of <Model>.md has no [optional]; JSON names",\n'
        f' "models": {{\n{lines}\n }}\n}}\n',
        encoding="utf-8",
    )
    print(f"{len(table)} models, {sum(bool(v) for v in table.values())} with required fields")
