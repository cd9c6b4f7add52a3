"""Where methods come from: built-ins, entry points and ``module:attr`` references.

Three ways to name a method, tried in this order:

1. a built-in registered with :func:`register_method` (``vanilla``, ``aux_conf``, ...);
2. an entry point of group ``w2s_transfer.methods`` whose name is the method name;
3. ``package.module:attr``, where ``attr`` is a Method object or a class to instantiate.

Built-ins are trusted and run in-process, except where the jail settings say ``builtins: jail``:
then a built-in is described in the jail like a plugin and no file of ``methods/builtin/`` is
imported here (its names come from the data table ``methods.builtin_names``). Everything else is a
plugin, and a plugin's code never runs in the trusted process: :func:`resolve_method` returns a
``methods.plugins.PluginMethod`` described in the jail (entry points are found from package
metadata, which runs no code), and :func:`parse_params` validates its params there.
:func:`load_plugin`, which imports plugin code, is for the jail worker only.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from methods.base import Method
from methods.builtin_names import BUILTIN_MODULES
from w2s_common.errors import InputError
from w2s_common.names import name_key
from w2s_common.validation import first_error

ENTRY_POINT_GROUP = "w2s_transfer.methods"

Origin = Literal["builtin", "entry-point", "reference"]


@dataclass(frozen=True)
class MethodInfo:
    """A resolved method and where it came from.

    Attributes:
        method: the Method object.
        reference: what resolves to it again (a name or ``module:attr``); the sandbox worker
            uses it to load the same method in a child process.
        origin: ``builtin``, ``entry-point`` or ``reference``.
        provider: the distribution (entry points) or module (references) that supplied it.
    """

    method: Method
    reference: str
    origin: Origin
    provider: str


_BUILTINS: dict[str, MethodInfo] = {}
# id(method) -> info, for every method this process resolved (is_builtin, method_info).
_RESOLVED: dict[int, MethodInfo] = {}


def register_method(cls_or_obj: Any) -> Any:
    """Class or object decorator registering a trusted built-in method under its ``name``.

    Args:
        cls_or_obj: a Method class (instantiated without arguments) or a Method object.

    Returns:
        ``cls_or_obj`` unchanged.

    Raises:
        ValueError: the object is not a valid Method or its name is taken (a programming error).
    """
    method = cls_or_obj() if isinstance(cls_or_obj, type) else cls_or_obj
    problem = _contract_problem(method)
    if problem:
        raise ValueError(f"cannot register {cls_or_obj!r}: {problem}")
    if method.name in _BUILTINS and type(_BUILTINS[method.name].method) is not type(method):
        raise ValueError(f"a built-in method named {method.name!r} is already registered")
    info = MethodInfo(method, method.name, "builtin", "w2s-transfer")
    _BUILTINS[method.name] = info
    _RESOLVED[id(method)] = info
    return cls_or_obj


def _load_builtins() -> None:
    """Import every built-in's module (their ``@register_method`` decorators register them)."""
    for module in sorted(set(BUILTIN_MODULES.values())):
        importlib.import_module(module)


def is_builtin_name(name: str) -> bool:
    """Whether ``name`` names a built-in: one of the table ``BUILTIN_MODULES`` (nothing is
    imported), or one registered in this process (a test installs its own)."""
    return name in BUILTIN_MODULES or name in _BUILTINS


def builtin_like(name: str) -> str | None:
    """The built-in ``name`` reads as, case and separators aside (``Vanilla``, ``va-nilla``:
    ``vanilla``), or None."""
    key = name_key(name)
    return next((b for b in sorted({*BUILTIN_MODULES, *_BUILTINS}) if name_key(b) == key), None)


def _builtin(name: str) -> Method:
    """The in-process built-in ``name``, importing its module (``BUILTIN_MODULES``)."""
    if name in BUILTIN_MODULES:
        importlib.import_module(BUILTIN_MODULES[name])
    if name not in _BUILTINS:
        raise ValueError(f"{BUILTIN_MODULES[name]} registers no method named {name!r} "
                         "(methods/builtin_names.py is out of date)")
    return _BUILTINS[name].method


def _contract_problem(method: Any) -> str | None:
    """Why ``method`` does not satisfy the Method protocol, or None when it does."""
    name = getattr(method, "name", None)
    if not isinstance(name, str) or not name or ":" in name:
        return "`name` must be a non-empty string without ':'"
    description = getattr(method, "description", None)
    if not isinstance(description, str) or not description.strip() or "\n" in description.strip():
        return "`description` must be one non-empty line"
    params = getattr(method, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        return "`Params` must be a pydantic model class"
    if params.model_config.get("extra") != "forbid":
        return "`Params` must set model_config extra='forbid'"
    if not callable(getattr(method, "run", None)):
        return "`run(data, trainer, params)` is missing"
    return None


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Entry points of our group in the plugin directories (``$W2S_PLUGIN_PATH``), read from
    package metadata: nothing of them is imported here, and the directories never join
    ``sys.path`` (a ``.pth`` line there would run at every interpreter start)."""
    from methods.jail_runtime import plugin_dirs

    found: dict[str, importlib.metadata.EntryPoint] = {}
    dirs = plugin_dirs()
    if dirs:
        for dist in importlib.metadata.distributions(path=dirs):
            for entry_point in dist.entry_points.select(group=ENTRY_POINT_GROUP):
                found.setdefault(entry_point.name, entry_point)
    return found


def _environment_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Entry points of our group installed in the pipeline's own environment: refused, since
    whatever such a distribution installed already runs with the pipeline's privileges."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _refused(entry_point: importlib.metadata.EntryPoint) -> InputError:
    dist = entry_point.dist.name if entry_point.dist is not None else entry_point.value
    return InputError(f"entry point {entry_point.name!r} comes from {dist}, installed in the "
                      "pipeline's own environment, where its code runs with the pipeline's "
                      "privileges; install plugins into a plugin directory instead (pip install "
                      "--target DIR ...; W2S_PLUGIN_PATH=DIR)", field="--method")


def _as_method(obj: Any, where: str) -> Method:
    method = obj() if isinstance(obj, type) else obj
    problem = _contract_problem(method)
    if problem:
        raise InputError(f"{where} is not a valid method: {problem}", field="--method")
    return method


def _remember(info: MethodInfo) -> Method:
    _RESOLVED[id(info.method)] = info
    return info.method


def _from_reference(reference: str) -> Method:
    module_name, attr = _split_reference(reference)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InputError(f"cannot import module {module_name!r} of {reference!r}: {err}",
                         field="--method") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"module {module_name!r} has no attribute {attr!r}",
                             field="--method")
        obj = getattr(obj, part)
    method = _as_method(obj, reference)
    return _remember(MethodInfo(method, reference, "reference", module_name))


def _split_reference(reference: str) -> tuple[str, str]:
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise InputError(f"expected 'package.module:attr', got {reference!r}", field="--method")
    return module_name, attr


def load_plugin(name_or_ref: str) -> Method:
    """Import a method by built-in name or ``module:attr`` (an entry point's target): for the
    jail worker only (``methods.jail_worker``), never in the trusted process.

    Raises:
        InputError: unknown name, unimportable or invalid plugin.
    """
    name_or_ref = name_or_ref.strip()
    # A reference needs no built-in (importing them all costs a torch import).
    if ":" in name_or_ref:
        return _from_reference(name_or_ref)
    if is_builtin_name(name_or_ref):
        return _builtin(name_or_ref)
    raise InputError(f"unknown method {name_or_ref!r}", field="--method")


def _plugin_source(name_or_ref: str):
    """A plugin's ``methods.plugins.PluginSource`` from its name alone (no code runs), or None
    when no entry point has that name."""
    from methods.plugins import PluginSource

    if ":" in name_or_ref:
        module_name, _ = _split_reference(name_or_ref)
        return PluginSource(name_or_ref, name_or_ref, "reference", module_name)
    entry_point = _entry_points().get(name_or_ref)
    if entry_point is None:
        installed = _environment_entry_points().get(name_or_ref)
        if installed is not None:
            raise _refused(installed)
        return None
    provider = entry_point.dist.name if entry_point.dist is not None else entry_point.value
    return PluginSource(entry_point.name, entry_point.value, "entry-point", provider)


def _describe(source, params: Any) -> tuple[Method, BaseModel]:
    from methods.plugins import describe_plugin

    plugin, parsed = describe_plugin(source, params)
    if source.origin == "builtin":
        if plugin.name != source.reference:
            raise InputError(f"{source.shown} described itself as {plugin.name!r}",
                             field="--method")
    elif (like := builtin_like(plugin.name)) is not None:
        raise InputError(f"{source.shown} names itself {plugin.name!r}, which reads as the "
                         f"built-in method {like!r}; plugins need names of their own",
                         field="--method")
    return plugin, parsed


def _unknown(name_or_ref: str) -> InputError:
    known = ", ".join(sorted(set(builtin_names()) | set(_entry_points())))
    return InputError(f"unknown method {name_or_ref!r}; known methods: {known} "
                      "(or name a plugin as 'package.module:attr')", field="--method")


def resolve_method(name_or_ref: str) -> Method:
    """Find a method by built-in name, entry-point name or ``module:attr`` reference.

    Built-ins are returned as they are, or, where the current jail settings say ``builtins:
    jail``, described in the jail like a plugin (``methods.plugins.PluginMethod`` of origin
    ``builtin``). A plugin is described in the jail (its code never runs here) and returned as a
    ``methods.plugins.PluginMethod``.

    Args:
        name_or_ref: e.g. ``"vanilla"``, ``"my_plugin_method"``, ``"my_pkg.methods:Fancy"``.

    Returns:
        the Method object.

    Raises:
        InputError: unknown name (listing the known ones), or a plugin that fails to import, is
            invalid or cannot be jailed here.
    """
    return _resolve(name_or_ref, None)[0]


def resolve_with_params(name_or_ref: str, params: list[str] | tuple[str, ...] |
                        Mapping[str, Any] | None) -> tuple[Method, BaseModel]:
    """:func:`resolve_method` and :func:`parse_params` at once (one jail run for a plugin or a
    jailed built-in); ``params`` None means the defaults.

    Raises:
        InputError: as both functions do.
    """
    method, parsed = _resolve(name_or_ref, dict(params) if isinstance(params, Mapping)
                              else list(params or []))
    assert parsed is not None
    return method, parsed


def _resolve(name_or_ref: str, pairs: list[str] | dict[str, Any] | None
             ) -> tuple[Method, BaseModel | None]:
    """The method and, unless ``pairs`` is None, its validated params."""
    from methods.plugins import PluginSource
    from methods.policy import current_settings

    name_or_ref = name_or_ref.strip()
    if is_builtin_name(name_or_ref):
        if current_settings().jails_builtin(name_or_ref):
            # Described in the jail: the trusted process never imports a built-in's module here.
            return _describe(PluginSource(name_or_ref, name_or_ref, "builtin", "w2s-transfer"),
                             pairs)
        method = _builtin(name_or_ref)
        return method, None if pairs is None else parse_params(method, pairs)
    source = _plugin_source(name_or_ref)
    if source is None:
        raise _unknown(name_or_ref)
    return _describe(source, pairs)


def list_methods() -> list[MethodInfo | tuple[str, str]]:
    """All built-ins and entry-point methods, built-ins first, each plugin and each built-in
    port of ``methods/builtin/`` described in the jail: a listing never runs such code in this
    process, whatever a later plan's ``builtins`` setting (run here as root, a built-in's
    import-time code rewrote the jail's cached project copy that later jailed runs mount, and
    forged a promoted REAL; attacker review, 2026-12-05). The pipeline's own built-ins
    (``PIPELINE_BUILTINS``) are imported.

    Returns:
        one ``MethodInfo`` per method; a method that cannot be described (no jail here, or it
        fails) appears as ``(name, error message)`` so that a listing can show it instead of
        crashing.
    """
    from methods.policy import JailSettings, jail_settings

    listed: list[MethodInfo | tuple[str, str]] = []
    with jail_settings(JailSettings(builtins="jail")):
        for name in builtin_names():
            try:
                listed.append(method_info(_resolve(name, None)[0]))
            except InputError as err:
                listed.append((name, err.message))
    plugins = _entry_points()
    for name, entry_point in sorted(_environment_entry_points().items()):
        if name not in plugins and not is_builtin_name(name):
            listed.append((name, _refused(entry_point).message))
    for name in sorted(plugins):
        if is_builtin_name(name):
            continue
        try:
            method, _ = _describe(_plugin_source(name), None)
        except InputError as err:
            listed.append((name, err.message))
            continue
        listed.append(method_info(method))
    return listed


def method_info(method: Method) -> MethodInfo:
    """Where a method came from; methods not resolved through this module count as plugins."""
    from methods.plugins import PluginMethod

    if isinstance(method, PluginMethod):
        return MethodInfo(method, method.reference, method.origin, method.provider)
    info = _RESOLVED.get(id(method))
    if info is not None and info.method is method:
        return info
    module = type(method).__module__
    reference = f"{module}:{type(method).__qualname__}"
    return MethodInfo(method, reference, "reference", module)


def builtin_names() -> list[str]:
    """Names of the trusted built-in methods (from the table: no method is imported)."""
    return sorted(set(BUILTIN_MODULES) | set(_BUILTINS))


def is_builtin(method: Method) -> bool:
    """True for the trusted built-ins (in this process, or described in the jail where the
    settings jail them); False for any plugin."""
    from methods.plugins import PluginMethod

    if isinstance(method, PluginMethod):
        return method.origin == "builtin"
    info = _RESOLVED.get(id(method))
    return info is not None and info.method is method and info.origin == "builtin"


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # not JSON, or an integer past Python's 4300-digit conversion limit
        return raw


def _finite(method: Method, parsed: BaseModel) -> BaseModel:
    """``parsed`` unless a number in it is not finite: params travel to workers and into run
    specs as JSON, where ``inf`` becomes null, so ``alpha: .inf`` passed every check and failed
    in the worker after the campaign had started (review 2026-12-05, helper-44)."""
    stack: list[tuple[str, Any]] = list(parsed.model_dump(mode="python").items())
    while stack:
        key, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            top = key.split(".")[0].split("[")[0]
            raise InputError(f"method {method.name}: expected a finite number, got {value} "
                             f"(at {key})" if key != top else
                             f"method {method.name}: expected a finite number, got {value}",
                             field=f"--param {top}")
        if isinstance(value, Mapping):
            stack.extend((f"{key}.{k}", v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{key}[{i}]", v) for i, v in enumerate(value))
    return parsed


def _expected(field_info: Any) -> str:
    annotation = getattr(field_info, "annotation", None)
    text = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
    return text


def parse_params(method: Method, pairs: list[str] | tuple[str, ...] | Mapping[str, Any]
                 ) -> BaseModel:
    """Turn ``["key=value", ...]`` (or an already typed mapping) into the method's ``Params``.

    Values are parsed as JSON when they parse (``0.3``, ``true``, ``null``, ``[1,2]``), else
    kept as strings (``command=sh run.sh``); a string field keeps the text as written.

    Args:
        method: the resolved method.
        pairs: ``key=value`` strings, e.g. from repeated ``--param`` options, or a mapping of
            typed values (e.g. params stored in a run spec), validated as they are.

    Returns:
        an instance of ``method.Params``.

    Raises:
        InputError: malformed pair, repeated key, unknown key or ill-typed value, naming the
            method, the field and what was expected.
    """
    from methods.plugins import PluginMethod

    if isinstance(method, PluginMethod):
        from methods.plugins import PluginSource

        source = PluginSource(method.reference, method.target, method.origin, method.provider)
        _, parsed = _describe(source, dict(pairs) if isinstance(pairs, Mapping) else list(pairs))
        return _finite(method, parsed)
    if isinstance(pairs, Mapping):
        try:
            return _finite(method, method.Params.model_validate(dict(pairs)))
        except ValidationError as err:
            raise _params_error(method, err, dict(pairs)) from None
    values: dict[str, Any] = {}
    raw_values: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"method {method.name}: expected key=value, got {pair!r}",
                             field="--param")
        if key in values:
            raise InputError(f"method {method.name}: given twice", field=f"--param {key}")
        try:
            values[key], raw_values[key] = _parse_value(raw), raw
        except RecursionError:  # '[' x 100000: Python's parser gives up
            raise InputError(f"method {method.name}: value nested too deeply (expected a JSON "
                             "value or plain text)", field=f"--param {key}") from None
    while True:
        try:
            return _finite(method, method.Params.model_validate(values))
        except ValidationError as err:
            # `command=true` parses as JSON true; a string field wants the text as written.
            loc = first_error(err).loc
            key = str(loc[0]) if loc else ""
            if key in raw_values and values[key] != raw_values[key]:
                values[key] = raw_values[key]
                continue
            raise _params_error(method, err, values) from None


def _params_error(method: Method, err: ValidationError, values: dict[str, Any]) -> InputError:
    """One-line InputError for the first problem pydantic found in a method's params."""
    fields = method.Params.model_fields
    first = first_error(err)
    key = str(first.loc[0]) if first.loc else ""
    if first.kind == "extra_forbidden":
        known = ", ".join(fields) or "none"
        message = f"method {method.name}: unknown param; known params: {known}"
    elif first.kind == "missing":
        message = (f"method {method.name}: required param missing (expected "
                   f"{_expected(fields[key])})")
    elif key in fields:
        message = (f"method {method.name}: expected {_expected(fields[key])}"
                   f" ({first.message}), got {values.get(key)!r}")
    else:
        message = f"method {method.name}: {first.message}"
    return InputError(message, field=f"--param {key}".rstrip())
