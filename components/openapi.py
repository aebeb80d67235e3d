"""Components made from OpenAPI 3.0 and 3.1 documents: one action per operation.

`load_document(source)` reads a document from a file or an http(s) URL (JSON or YAML) and checks
it against the OpenAPI schema of its version with openapi-spec-validator's schema validator (its
jsonschema-rs backend checks GitHub's 13 MB description in well under a second; the library's full
`validate()` also walks every `$ref` and takes ~20 s on it). `ApiSpec.from_document` lists the
operations; `$ref`s are resolved with `referencing` (the resolver jsonschema uses) on demand.
`api_component(spec, key=...)` turns it into a `Component`:

- one action per operation, its key from the `operationId` (else method and path), its title
  from the summary prefixed by the first tag (`pets · List all pets`, so the palette reads by
  tag), its description from the spec;
- inputs: `base_url` (the spec's first server), `connection` when the operation is secured,
  one field per path, query and header parameter, and `body` typed from the JSON (or form)
  request body schema, so the inspector draws their forms like any component's;
- the output: `status`, `headers` and `body` typed from the 2xx response schema.

Pydantic models are built when an action's `Inputs` or `Output` is first read, so a component
with a thousand operations loads in the time it takes to read its JSON. A run sends the request
through the built-in HTTP request action: the same address policy, redirects, retries of
transient errors, secret scrubbing and connection auth (api_key, basic, bearer, oauth2).
Operations whose only request body is multipart or binary are left out and listed in
`ApiSpec.skipped`, with the reason.
"""

from __future__ import annotations

import functools
import json
import keyword
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, cast
from urllib.parse import quote

import httpx
import yaml
from openapi_spec_validator.schemas import schema_v30, schema_v31
from openapi_spec_validator.schemas.backend import get_validator_for
from pydantic import BaseModel, ConfigDict, Field, create_model
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from components.api import Action, Component, Inputs, Result, StepConfigError, StepContext
from components.builtin.http import HttpRequest, HttpRequestInputs

__all__ = [
    "ApiSpec",
    "OpenApiError",
    "Operation",
    "api_component",
    "load_document",
]

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
_MAX_DEPTH = 6
"""Nested object schemas deeper than this become plain objects (`dict`) in forms."""
_SPEC_URI = "urn:flowyard:openapi"
_RESERVED = frozenset({"base_url", "connection", "body", "on_http_error"})
_SHADOWED = frozenset(dir(BaseModel))


class OpenApiError(ValueError):
    """The document cannot be read or is not a valid OpenAPI 3.0/3.1 description."""


# --- reading and checking -------------------------------------------------------------------------


def load_document(source: str | Path, *, timeout: float = 30.0) -> dict[str, Any]:
    """Read and check an OpenAPI document from a file path or an http(s) URL."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        try:
            answer = httpx.get(text, timeout=timeout, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise OpenApiError(f"Could not download {text}: {exc or type(exc).__name__}.") from None
        if answer.status_code != 200:
            raise OpenApiError(f"Downloading {text} answered HTTP {answer.status_code}.")
        raw = answer.content
    else:
        path = Path(text)
        if not path.is_file():
            raise OpenApiError(f"There is no file '{text}'.")
        raw = path.read_bytes()
    if len(raw) > _MAX_DOCUMENT_BYTES:
        raise OpenApiError(f"'{text}' is larger than {_MAX_DOCUMENT_BYTES // 2**20} MB.")
    return parse_document(raw, name=text)


def parse_document(raw: bytes, *, name: str = "the document") -> dict[str, Any]:
    """Parse JSON or YAML bytes and check them against the OpenAPI schema of their version."""
    try:
        document = (
            json.loads(raw)
            if raw.lstrip()[:1] in (b"{", b"[")
            else yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        )
    except (ValueError, yaml.YAMLError) as exc:
        raise OpenApiError(f"{name} is neither JSON nor YAML: {exc}".splitlines()[0]) from None
    if not isinstance(document, dict):
        raise OpenApiError(f"{name} is not an OpenAPI document (its top level is not an object).")
    version = str(document.get("openapi", ""))
    if "swagger" in document:
        raise OpenApiError(
            f"{name} is Swagger {document['swagger']}; only OpenAPI 3.0 and 3.1 are read. "
            "Convert it first, e.g. with swagger2openapi."
        )
    if version.startswith("3.0"):
        meta = schema_v30
    elif version.startswith("3.1"):
        meta = schema_v31
    else:
        raise OpenApiError(
            f"{name} has openapi '{version or '(missing)'}'; only 3.0.x and 3.1.x are read."
        )
    errors = [str(e).splitlines()[0] for e in get_validator_for(meta).iter_errors(document)]
    if errors:
        listed = "; ".join(errors[:3]) + ("; ..." if len(errors) > 3 else "")
        raise OpenApiError(f"{name} is not a valid OpenAPI {version} document: {listed}")
    return document


# --- the operations of a document -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parameter:
    """A path, query or header parameter, with the input field that carries it."""

    name: str
    location: Literal["path", "query", "header"]
    field: str
    required: bool
    schema: Mapping[str, Any]
    description: str


@dataclass(frozen=True, slots=True)
class Auth:
    """How an operation authenticates: the connection type and, for API keys, where it goes."""

    connection_type: Literal["api_key", "basic", "bearer", "oauth2"]
    scheme: str
    header: str | None = None
    """The header of an API key sent in a header."""
    query: str | None = None
    """The query parameter of an API key sent in the query string."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of the document, as an action will call it."""

    key: str
    method: str
    path: str
    title: str
    description: str
    tag: str
    parameters: tuple[Parameter, ...]
    body_type: Literal["none", "json", "form"]
    body_schema: Mapping[str, Any] | None
    body_required: bool
    response_schema: Mapping[str, Any] | None
    auth: Auth | None


@dataclass
class ApiSpec:
    """The operations of an OpenAPI document, with a resolver for its `$ref`s."""

    title: str
    description: str
    base_url: str | None
    operations: list[Operation]
    skipped: list[tuple[str, str]]
    """(method and path, reason) of every operation left out."""
    document: Mapping[str, Any] = field(repr=False)
    _resolver: Any = field(repr=False)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ApiSpec:
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        resolver = Registry().with_resource(_SPEC_URI, resource).resolver(base_uri=_SPEC_URI)
        spec = cls(
            title=str(document.get("info", {}).get("title") or "API"),
            description=str(document.get("info", {}).get("description") or ""),
            base_url=_server_url(document.get("servers")),
            operations=[],
            skipped=[],
            document=document,
            _resolver=resolver,
        )
        spec._read_operations()
        return spec

    def resolve(self, node: Any) -> Any:
        """`node` with its top-level `$ref` (chain) followed; a cycle or a missing target raises."""
        seen: set[str] = set()
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                raise OpenApiError(f"'$ref': '{ref}' refers to itself.")
            seen.add(ref)
            if not ref.startswith("#"):
                raise OpenApiError(
                    f"'$ref': '{ref}' points outside the document; bundle it into one file first "
                    "(e.g. with `redocly bundle`)."
                )
            try:
                node = self._resolver.lookup(ref).contents
            except Unresolvable:
                raise OpenApiError(f"'$ref': '{ref}' points at nothing in the document.") from None
        return node

    def _read_operations(self) -> None:
        keys: set[str] = set()
        schemes = self.document.get("components", {}).get("securitySchemes", {}) or {}
        default_security = self.document.get("security")
        for path, item in (self.document.get("paths") or {}).items():
            item = self.resolve(item)
            shared = [self.resolve(p) for p in item.get("parameters", [])]
            for method in _METHODS:
                op = item.get(method)
                if not isinstance(op, Mapping):
                    continue
                where = f"{method.upper()} {path}"
                body_type, body_schema, body_required = self._body(op)
                if body_type is None:
                    self.skipped.append((where, "its request body is not JSON or a form"))
                    continue
                key = _unique(_identifier(op.get("operationId") or f"{method}_{path}"), keys)
                tags = op.get("tags") or []
                summary = str(op.get("summary") or op.get("operationId") or where).strip()
                security = op.get("security", default_security)
                self.operations.append(
                    Operation(
                        key=key,
                        method=method.upper(),
                        path=path,
                        title=f"{tags[0]} · {summary}" if tags else summary,
                        description=_describe(op, where),
                        tag=str(tags[0]) if tags else "",
                        parameters=self._parameters(shared, op),
                        body_type=body_type,
                        body_schema=body_schema,
                        body_required=body_required,
                        response_schema=self._response(op),
                        auth=self._auth(security, schemes),
                    )
                )

    def _parameters(self, shared: list[Any], op: Mapping[str, Any]) -> tuple[Parameter, ...]:
        merged: dict[tuple[str, str], Mapping[str, Any]] = {}
        for raw in [*shared, *(self.resolve(p) for p in op.get("parameters", []))]:
            if raw.get("in") in ("path", "query", "header"):
                merged[(raw["in"], raw["name"])] = raw  # an operation's own overrides the path's
        fields: set[str] = set(_RESERVED)
        params = []
        for (location, name), raw in merged.items():
            if location == "header" and name.lower() in ("accept", "content-type", "authorization"):
                continue  # set by the request itself
            schema: Any = raw.get("schema")
            if schema is None:  # `content` instead of `schema`: the first media type's schema
                media: Mapping[str, Any] = raw.get("content") or {}
                first: Mapping[str, Any] = next(iter(media.values()), {})
                schema = first.get("schema", {})
            params.append(
                Parameter(
                    name=name,
                    location=cast(Literal["path", "query", "header"], location),
                    field=_unique(_identifier(name), fields),
                    required=bool(raw.get("required")) or location == "path",
                    schema=schema or {},
                    description=str(raw.get("description") or ""),
                )
            )
        return tuple(params)

    def _body(
        self, op: Mapping[str, Any]
    ) -> tuple[Literal["none", "json", "form"] | None, Mapping[str, Any] | None, bool]:
        raw = op.get("requestBody")
        if raw is None:
            return "none", None, False
        body = self.resolve(raw)
        content: Mapping[str, Any] = body.get("content") or {}
        required = bool(body.get("required"))
        for media, entry in content.items():
            kind = media.split(";")[0].strip().lower()
            if kind == "application/json" or kind.endswith("+json"):
                return "json", (entry or {}).get("schema") or {}, required
        if "application/x-www-form-urlencoded" in content:
            entry = content["application/x-www-form-urlencoded"] or {}
            return "form", entry.get("schema") or {}, required
        if not content:
            return "none", None, False
        return None, None, required

    def _response(self, op: Mapping[str, Any]) -> Mapping[str, Any] | None:
        responses: Mapping[str, Any] = op.get("responses") or {}
        for code in sorted((c for c in responses if str(c).startswith("2")), key=str):
            content = self.resolve(responses[code]).get("content") or {}
            for media, entry in content.items():
                kind = media.split(";")[0].strip().lower()
                if kind in ("application/json", "*/*") or kind.endswith("+json"):
                    schema = (entry or {}).get("schema")
                    return schema if isinstance(schema, Mapping) else None
            return None
        return None

    def _auth(self, security: Any, schemes: Mapping[str, Any]) -> Auth | None:
        for requirement in security or []:
            for name in requirement or {}:
                scheme = self.resolve(schemes.get(name) or {})
                auth = _auth_of(name, scheme)
                if auth is not None:
                    return auth
        return None


def _auth_of(name: str, scheme: Mapping[str, Any]) -> Auth | None:
    kind = scheme.get("type")
    if kind == "apiKey" and scheme.get("in") == "header":
        return Auth("api_key", name, header=str(scheme.get("name") or "X-API-Key"))
    if kind == "apiKey" and scheme.get("in") == "query":
        return Auth("api_key", name, query=str(scheme.get("name") or "api_key"))
    if kind == "http" and str(scheme.get("scheme", "")).lower() == "basic":
        return Auth("basic", name)
    if kind == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
        return Auth("bearer", name)
    if kind in ("oauth2", "openIdConnect"):
        return Auth("oauth2", name)
    return None  # cookie API keys, mutual TLS: not something a connection can carry


def _server_url(servers: Any) -> str | None:
    if not servers:
        return None
    first = servers[0]
    url = str(first.get("url") or "")
    for name, variable in (first.get("variables") or {}).items():
        url = url.replace("{" + name + "}", str(variable.get("default", "")))
    return url.rstrip("/") if url.startswith(("http://", "https://")) else None


def _describe(op: Mapping[str, Any], where: str) -> str:
    text = str(op.get("description") or op.get("summary") or "").strip()
    return f"{where}. {text}" if text else f"{where}."


def _identifier(text: str) -> str:
    """A snake_case identifier for a name from the spec (`X-Rate-Limit` -> `x_rate_limit`)."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "value"
    if text[0].isdigit():
        text = f"n_{text}"
    if keyword.iskeyword(text) or text in _SHADOWED:
        text = f"{text}_"
    return text


def _unique(name: str, taken: set[str]) -> str:
    found, n = name, 2
    while found in taken:
        found, n = f"{name}_{n}", n + 1
    taken.add(found)
    return found


# --- schemas as pydantic types --------------------------------------------------------------------


class _Open(BaseModel):
    """A nested object of a request or response: keys the schema does not list are kept."""

    model_config = ConfigDict(extra="allow")


class _Types:
    """JSON schemas of one document as Python types; one model per named schema, built once."""

    def __init__(self, spec: ApiSpec) -> None:
        self.spec = spec
        self.models: dict[str, Any] = {}
        self.building: set[str] = set()

    def of(self, schema: Any, name: str, depth: int = 0) -> Any:
        ref = schema.get("$ref") if isinstance(schema, Mapping) else None
        if isinstance(ref, str):
            if ref in self.models:
                return self.models[ref]
            if ref in self.building or depth > _MAX_DEPTH:
                return dict[str, Any]  # a recursive schema: plain objects below the cycle
            self.building.add(ref)
            try:
                built = self.of(self.spec.resolve(schema), ref.rsplit("/", 1)[-1], depth)
            finally:
                self.building.discard(ref)
            self.models[ref] = built
            return built
        if not isinstance(schema, Mapping):
            return Any
        nullable = bool(schema.get("nullable"))
        kind = schema.get("type")
        if isinstance(kind, list):  # 3.1: ["string", "null"]
            nullable = nullable or "null" in kind
            kinds = [k for k in kind if k != "null"]
            kind = kinds[0] if len(kinds) == 1 else None
        found = self._plain(schema, kind, name, depth)
        return found | None if nullable and found is not Any else found

    def _plain(self, schema: Mapping[str, Any], kind: Any, name: str, depth: int) -> Any:
        enum = schema.get("enum")
        if enum and all(isinstance(v, str | int | bool) for v in enum):
            return Literal[tuple(enum)]
        if "allOf" in schema:
            merged = _merge_all_of([self.spec.resolve(part) for part in schema["allOf"]])
            return self._plain(merged, merged.get("type", "object"), name, depth)
        for combined in ("oneOf", "anyOf"):
            parts = [p for p in schema.get(combined, []) if p.get("type") != "null"]
            if parts:
                return self.of(parts[0], name, depth) if len(parts) == 1 else Any
        if kind == "string":
            return str
        if kind == "integer":
            return int
        if kind == "number":
            return float
        if kind == "boolean":
            return bool
        if kind == "array":
            return list[self.of(schema.get("items", {}), f"{name}_item", depth + 1)]  # type: ignore[misc]
        if kind == "object" or "properties" in schema:
            properties = schema.get("properties") or {}
            if not properties or depth >= _MAX_DEPTH:
                return dict[str, Any]
            return self.model(name, properties, set(schema.get("required") or []), depth + 1)
        return Any

    def model(
        self, name: str, properties: Mapping[str, Any], required: set[str], depth: int
    ) -> type[BaseModel]:
        fields: dict[str, Any] = {}
        taken: set[str] = set()
        for prop, sub in properties.items():
            resolved = self.spec.resolve(sub) if isinstance(sub, Mapping) else {}
            kind = self.of(sub, f"{name}_{prop}", depth)
            attr = _unique(_identifier(prop), taken)
            info = _field(resolved, prop in required, title=prop, alias=prop)
            fields[attr] = (kind if prop in required else kind | None, info)
        return create_model(_class_name(name), __base__=_Open, **fields)


def _merge_all_of(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for part in parts:
        merged["properties"].update(part.get("properties") or {})
        merged["required"].extend(part.get("required") or [])
        for key in ("description", "title"):
            merged.setdefault(key, part.get(key))
    return merged


def _field(schema: Mapping[str, Any], required: bool, *, title: str, alias: str | None) -> Any:
    description = str(schema.get("description") or "").strip()
    if not required:
        return Field(None, title=title, description=description, alias=alias)
    return Field(title=title, description=description, alias=alias)


def _class_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in _identifier(name).split("_")) or "Value"


# --- actions --------------------------------------------------------------------------------------


class _Lazy:
    """A class attribute computed on first read (an action's `Inputs` and `Output` models)."""

    def __init__(self, build: Callable[[], type[BaseModel]]) -> None:
        self._build = build
        self._value: type[BaseModel] | None = None
        self._lock = threading.Lock()

    def __get__(self, instance: object, owner: type | None = None) -> type[BaseModel]:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
        return self._value


class ApiAction(Action[Any]):
    """Base of the generated actions: builds the request from `operation` and sends it."""

    operation: ClassVar[Operation]
    component_key: ClassVar[str]

    async def run(self, inputs: Any, ctx: StepContext) -> Result:
        op = self.operation
        values = inputs.model_dump(by_alias=True, exclude_none=True, mode="json")
        path, query, headers = op.path, {}, {}
        for param in op.parameters:
            value = getattr(inputs, param.field, None)
            if value is None:
                continue
            if param.location == "path":
                text = value if isinstance(value, str) else json.dumps(value)
                path = path.replace("{" + param.name + "}", quote(text, safe=""))
            elif param.location == "query":
                query[param.name] = values[param.field]
            else:
                headers[param.name] = str(values[param.field])
        connection = getattr(inputs, "connection", None) or None
        header = "X-API-Key"
        if connection and op.auth is not None and op.auth.query is not None:
            slot = ctx.connections.get(connection)
            if slot is None:
                raise StepConfigError(
                    f"Connection '{connection}' is not available to this step.",
                    hint=f"Add a connection slot '{connection}' of type api_key to the "
                    "integration and fill it in on the instance.",
                )
            query[op.auth.query] = slot.secret("api_key")
            connection = None
        elif op.auth is not None and op.auth.header is not None:
            header = op.auth.header
        request = HttpRequestInputs(
            method=op.method,  # type: ignore[arg-type]
            url=str(inputs.base_url).rstrip("/") + path,
            query=query,
            headers=headers,
            body_type=op.body_type if "body" in values else "none",
            body=values.get("body"),
            connection=connection,
            api_key_header=header,
            on_http_error=inputs.on_http_error,
        )
        return await HttpRequest().run(request, ctx)


def _inputs_model(spec: ApiSpec, types: _Types, op: Operation, key: str) -> type[BaseModel]:
    base_default = spec.base_url
    fields: dict[str, Any] = {
        "base_url": (
            str,
            Field(
                base_default if base_default else ...,
                title="Base URL",
                description="Where the API is, without a trailing slash"
                + (f" (the spec says {base_default})" if base_default else "")
                + "; often `{{ config.api_url }}`.",
                pattern=r"^(https?://\S+|\{\{.*\}\})$",
            ),
        )
    }
    if op.auth is not None:
        fields["connection"] = (
            str,
            Field(
                key,
                title="Connection",
                description=f"Connection slot of type {op.auth.connection_type} "
                f"(the spec's '{op.auth.scheme}' scheme).",
            ),
        )
    for param in op.parameters:
        kind = types.of(param.schema, f"{op.key}_{param.field}")
        fields[param.field] = (
            kind if param.required else kind | None,
            _field(
                {"description": param.description or f"{param.location} parameter {param.name}"},
                param.required,
                title=param.name,
                alias=None,
            ),
        )
    if op.body_schema is not None:
        kind = types.of(op.body_schema, f"{op.key}_body")
        resolved = spec.resolve(op.body_schema)
        description = str(resolved.get("description") or "The request body.")
        fields["body"] = (
            kind if op.body_required else kind | None,
            _field({"description": description}, op.body_required, title="Body", alias=None),
        )
    fields["on_http_error"] = (
        Literal["fail", "output"],
        Field(
            "fail",
            title="On HTTP error",
            description="`fail`: a 4xx/5xx answer fails the step (5xx and 429 are retried). "
            "`output`: every answer is the step's output.",
        ),
    )
    return create_model(_class_name(f"{op.key}_inputs"), __base__=Inputs, **fields)


def _output_model(types: _Types, op: Operation) -> type[BaseModel]:
    body: Any = (
        Any if op.response_schema is None else types.of(op.response_schema, f"{op.key}_result")
    )
    return create_model(
        _class_name(f"{op.key}_output"),
        __base__=_Open,
        status=(int, Field(title="Status", description="HTTP status code.")),
        headers=(dict[str, str], Field(title="Headers", description="Response headers.")),
        body=(body | None, Field(None, title="Body", description="The parsed answer.")),
        body_base64=(bool, Field(False, title="Body is base64")),
    )


def api_component(
    spec: ApiSpec, *, key: str, title: str | None = None, category: str = "APIs"
) -> Component:
    """A component with one action per operation of `spec` (models built on first use)."""
    types = _Types(spec)
    actions: list[type[Action[Any]]] = []
    for op in spec.operations:
        namespace: dict[str, Any] = {
            "key": op.key,
            "title": op.title,
            "description": op.description,
            "operation": op,
            "component_key": key,
            "Inputs": _Lazy(functools.partial(_inputs_model, spec, types, op, key)),
            "Output": _Lazy(functools.partial(_output_model, types, op)),
            "__module__": __name__,
        }
        actions.append(type(_class_name(f"{op.key}_action"), (ApiAction,), namespace))
    return Component(
        key=key,
        title=title or spec.title,
        category=category,
        description=spec.description[:500],
        actions=actions,
    )


def component_from_file(path: Path, *, key: str, title: str | None = None) -> Component:
    """The component of a saved document (what `flowyard component from-openapi` writes)."""
    return api_component(
        ApiSpec.from_document(parse_document(path.read_bytes(), name=path.name)),
        key=key,
        title=title,
    )
