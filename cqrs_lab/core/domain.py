"""A domain declared once, and the one :func:`install` every driver uses.

A :class:`Domain` is plain data: its events and upcasters, its command handlers (each command
class says whether it is public or internal), its read models and sagas (:class:`View`), the
queries that read them (:class:`Query`), what must hold after quiescence (:class:`Invariant`)
and its :class:`~cqrs_lab.core.workload.Workload` (command mix, seeded samplers, key space).
The in-process engine, the simulation, the HTTP server, the load generator and the checks all
build a domain through :func:`install`, so they cannot wire it differently.

>>> from cqrs_lab.core import Engine
>>> from cqrs_lab.domains.inventory import domain
>>> engine = Engine(seed=1)
>>> installed = install(engine, domain)
>>> sorted(installed.views), [c.__name__ for c in domain.public_commands][:2]
(['stock'], ['AddProduct', 'Release'])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, is_dataclass
from inspect import Parameter, signature
from pathlib import Path
from typing import Any

from cqrs_lab.core.engine import Engine
from cqrs_lab.core.messages import Command, Event
from cqrs_lab.core.projections import Projection, Saga
from cqrs_lab.core.workload import Workload, named
from cqrs_lab.errors import ConfigError, DomainError

__all__ = [
    "Domain",
    "Installed",
    "Invariant",
    "Query",
    "Upcaster",
    "View",
    "install",
    "load_domain",
]

Handler = Callable[[Any, Any], Any]
_KEYWORD = Parameter.KEYWORD_ONLY
#: subscribes one view on behalf of a driver: (view name, projection) -> its subscription
Subscriber = Callable[[str, Projection], Any]


@dataclass(frozen=True)
class View:
    """A read model or saga of the domain: its name and how to build a fresh one."""

    name: str
    factory: Callable[[], Projection]
    description: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name and callable(self.factory)):
            raise DomainError(f"View({self.name!r}, {self.factory!r}): pass a name and the class "
                              "(or function) that builds the projection")  # fmt: skip

    @property
    def is_saga(self) -> bool:
        return isinstance(self.factory, type) and issubclass(self.factory, Saga)


@dataclass(frozen=True)
class Query:
    """A query class answered by ``answer(view, query)`` from the view named ``view``."""

    type: type
    view: str
    answer: Callable[[Any, Any], Any]
    description: str = ""

    def __post_init__(self) -> None:
        if not (
            isinstance(self.type, type) and isinstance(self.view, str) and callable(self.answer)
        ):
            raise DomainError(f"Query({self.type!r}, {self.view!r}, ...): pass a query class, the "
                              "name of the view it reads, and a function answering it")  # fmt: skip

    @property
    def name(self) -> str:
        return self.type.__name__


@dataclass(frozen=True)
class Upcaster:
    """Turns a stored ``type_name`` payload of ``from_version`` into the next version."""

    type_name: str
    from_version: int
    upcast: Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class Invariant:
    """What must hold once the engine is quiet; ``check(engine)`` returns a check report.

    The report is a :class:`cqrs_lab.checks.report.CheckReport` (any object with ``ok`` and
    ``results`` works); the checks run every invariant of every installed domain.
    """

    name: str
    check: Callable[[Engine], Any]
    description: str = ""


#: the parts of a :class:`Domain` that hold declarations, and the kind each holds
_PARTS = {"views": View, "queries": Query, "upcasters": Upcaster, "invariants": Invariant}


@dataclass(frozen=True)
class Domain:
    """Everything the lab needs to know about one system, declared once."""

    name: str
    description: str
    events: tuple[type[Event], ...]
    handlers: Mapping[type[Command], Handler]
    views: tuple[View, ...]
    queries: tuple[Query, ...] = ()
    aggregates: tuple[type, ...] = ()
    upcasters: tuple[Upcaster, ...] = ()
    invariants: tuple[Invariant, ...] = ()
    workload: Workload | None = None
    #: "module:function" building hand-designed HTTP routes over the same engine (optional;
    #: imported by the HTTP driver only, so a domain needs no web framework to be declared)
    http_routes: str | None = None
    extra_events: tuple[type[Event], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        where = f"domain {self.name!r}"
        for part, kind in _PARTS.items():
            items = getattr(self, part)
            if not isinstance(items, tuple | list):
                raise DomainError(
                    f"{where}: {part}={items!r}; pass a tuple of {kind.__name__} objects, "
                    f"e.g. {part}=({kind.__name__}(...),) (mind the comma)"
                )
            for x in items:
                if not isinstance(x, kind):
                    raise DomainError(f"{where}: {part} holds {x!r}; pass {kind.__name__} objects")
        _check_messages(where, "events", (*self.events, *self.extra_events), Event)
        _check_messages(where, "handlers", tuple(self.handlers), Command)
        names = [v.name for v in self.views]
        if len(set(names)) != len(names):
            raise DomainError(f"{where}: views have duplicate names {names}; name each once")
        for q in self.queries:
            if q.view not in names:
                raise DomainError(
                    f"{where}: query {q.name} reads view {q.view!r}, which the domain does "
                    f"not declare; declared views: {names}"
                )
        if self.workload is not None:
            self.workload.validate(self)

    # -- lookups -------------------------------------------------------------------------------
    @property
    def commands(self) -> tuple[type[Command], ...]:
        return tuple(self.handlers)

    @property
    def public_commands(self) -> tuple[type[Command], ...]:
        """The commands a client may send, sorted by name (internal ones are a saga's)."""
        return tuple(sorted((c for c in self.handlers if not c.internal), key=_name))

    def command(self, name: str) -> type[Command]:
        return named(
            sorted(self.handlers, key=_name), _name, name,
            f"domain {self.name!r} has no command {name!r}; its commands: {{known}}",
        )  # fmt: skip

    def view(self, name: str) -> View:
        return named(
            self.views, lambda v: v.name, name,
            f"domain {self.name!r} has no view {name!r}; its views: {{known}}",
        )  # fmt: skip

    @property
    def view_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.views)

    def query(self, name: str) -> Query:
        return named(
            self.queries, lambda q: q.name, name,
            f"domain {self.name!r} has no query {name!r}; its queries: {{known}}",
        )  # fmt: skip


@dataclass
class Installed:
    """What :func:`install` wired on an engine: the domain, its live views and subscriptions."""

    domain: Domain
    engine: Engine
    views: dict[str, Projection]
    subscriptions: dict[str, Any]

    def view(self, name: str) -> Projection:
        try:
            return self.views[name]
        except KeyError:
            raise DomainError(
                f"view {name!r} is not installed; installed: {sorted(self.views)}"
            ) from None


def install(
    engine: Engine,
    domain: Domain,
    *,
    views: Iterable[str] | None = None,
    delivery: Any = "effectively-once",
    delivery_of: Mapping[str, Any] | None = None,
    subscribe: Subscriber | None = None,
    **options: Any,
) -> Installed:
    """Register ``domain`` on ``engine``: events, upcasters, handlers, views, sagas, queries.

    ``views`` picks which read models and sagas run (default: all, in declared order);
    ``delivery`` is their delivery semantics, ``delivery_of`` overrides it per view;
    ``options`` go to :meth:`Engine.subscribe` (batch size, retries, faults). A driver that
    feeds views its own way (the simulation's consumer groups) passes ``subscribe``, called
    with each view's name and fresh projection. Queries of views not installed are left out.
    """
    if not isinstance(engine, Engine):
        raise ConfigError(f"install(engine={engine!r}): pass an Engine, e.g. Engine(seed=1)")
    if not isinstance(domain, Domain):
        raise ConfigError(
            f"install(domain={domain!r}): pass a Domain, e.g. load_domain('cqrs_lab.domains.bank')"
        )
    if isinstance(views, str):
        raise ConfigError(f"views={views!r}: pass a list of view names, e.g. [{views!r}]")
    if delivery_of is not None and not isinstance(delivery_of, Mapping):
        raise ConfigError(f"delivery_of={delivery_of!r}: pass a dict of view name -> delivery")
    known = [n for n, p in signature(engine.subscribe).parameters.items() if p.kind is _KEYWORD]
    for key in options:
        if key not in known:
            raise ConfigError(f"install({key}=...): no such option; pass {', '.join(known)}")
    for name in delivery_of or ():
        if name not in domain.view_names:
            raise DomainError(f"delivery_of names view {name!r}, which domain {domain.name!r} does "
                              f"not declare; it has {', '.join(domain.view_names)}")  # fmt: skip
    chosen = list(domain.view_names if views is None else views)
    for name in chosen:
        domain.view(name)  # an unknown name fails here, naming the declared ones
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"views={chosen}: name each view once")
    for event_class in (*domain.events, *domain.extra_events):
        engine.registry.register(event_class)
    for up in domain.upcasters:
        engine.registry.upcaster(up.type_name, up.from_version, up.upcast)
    for command_type, handler in domain.handlers.items():
        engine.register(command_type, handler)
    per_view = dict(delivery_of or {})
    live: dict[str, Projection] = {}
    subs: dict[str, Any] = {}
    for name in chosen:
        proj = domain.view(name).factory()
        if proj.name != name:
            raise DomainError(
                f"domain {domain.name!r}: view {name!r} builds a projection named "
                f"{proj.name!r}; make the two names equal"
            )
        live[name] = proj
        if subscribe is not None:
            subs[name] = subscribe(name, proj)
        else:
            subs[name] = engine.subscribe(proj, per_view.get(name, delivery), **options)
    for q in domain.queries:
        if q.view in live:
            engine.register_query(q.type, _answerer(q.answer, live[q.view]), q.view)
    installed = Installed(domain, engine, live, subs)
    engine.installed.append(installed)
    return installed


def _answerer(answer: Callable[[Any, Any], Any], view: Projection) -> Callable[[Any], Any]:
    return lambda query: answer(view, query)


def load_domain(ref: str | Domain) -> Domain:
    """A domain by reference: ``"cqrs_lab.domains.bank"`` (a module with a ``domain``
    attribute) or ``"mypackage.orders:domain"`` (an importable object); a Domain passes."""
    if isinstance(ref, Domain):
        return ref
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(
            f"domain={ref!r}: name a module ('cqrs_lab.domains.bank') or an object "
            "('mypackage.orders:domain')"
        )
    module_name, _, attr = ref.strip().partition(":")
    if not module_name:
        raise ConfigError(
            f"domain={ref!r}: name the module before the colon, e.g. 'mypackage.orders:domain'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"domain={ref!r}: cannot import module {module_name!r} ({exc}); check the name "
            f"and that its package is installed or on Python's path{_path_hint(module_name)}"
        ) from None
    except Exception as exc:  # the user's module itself fails: say where, not a traceback
        raise ConfigError(
            f"domain={ref!r}: importing module {module_name!r} failed with "
            f"{type(exc).__name__}: {exc}; fix the module"
        ) from exc
    obj: Any = module
    for part in (attr or "domain").split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, Domain):
        raise ConfigError(
            f"domain={ref!r}: module {module_name!r} has no attribute {attr or 'domain'!r} that "
            "is a cqrs_lab.core.Domain; declare one (see the README's 'write your own domain')"
        )
    return obj


def _name(cls: type) -> str:
    return cls.__name__


def _path_hint(module_name: str) -> str:
    """How to make a module of one's own importable: a file path named instead of a module,
    or a module beside the current directory that Python's path lacks (console scripts,
    unlike ``python -m``, do not put the current directory on it)."""
    top = module_name.split(".")[0]
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        return (
            " (a module name, not a file path: 'library' for library.py, 'pkg.library' for "
            "pkg/library.py, with its folder on PYTHONPATH)"
        )
    if Path(top + ".py").is_file() or Path(top, "__init__.py").is_file():
        return (
            f" ({top} is in the current directory, which is not on the path: run with "
            "PYTHONPATH=. , or install your package with pip install -e .)"
        )
    return " (a module of your own: put its folder on PYTHONPATH, or pip install -e . it)"


def _check_messages(where: str, part: str, classes: tuple[Any, ...], base: type) -> None:
    """Every command or event class a dataclass subclassing ``base``, each name once (the
    log stores an event by its class's name, and a route finds a command by its name: two
    classes of one name would be one of them, silently)."""
    kind = base.__name__
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise DomainError(f"{where}: {part} holds {cls!r}, which is not a {kind} class")
        if not is_dataclass(cls):
            raise DomainError(
                f"{where}: {kind} {cls.__name__} is not a dataclass; declare it with "
                "@dataclass(frozen=True) (its fields are what is stored and sent)"
            )
    seen: dict[str, type] = {}
    for cls in classes:
        other = seen.setdefault(cls.__name__, cls)
        if other is not cls:
            raise DomainError(
                f"{where}: two {kind} classes are named {cls.__name__} ({other.__module__} "
                f"and {cls.__module__}); rename one (a {kind} is known by its name)"
            )
