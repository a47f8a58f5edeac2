"""The control model: metadata, findings, fix plans and the catalogue of controls (`tasks/` and plugins).

A control is one module in `tasks/` with declared data at the top (`META`; `PARAMS`, its parameters; `SHARED`, the
shared parameters it reads; `SHAPES`, the shape of every file it writes) and three pure functions:
`probe_items(params)` (what facts it needs), `check(facts, params) -> Finding`, and
`plan_fix(facts, params) -> Plan`. `params` is always complete and validated (`hardnir.params`). A Plan lists
exact file writes, links, removals and commands; every planned file is re-parsed against the control's declared
shapes before anyone sees the plan (`hardnir.filesafe`); the generic applier (`hardnir.fixes`) turns it into one
atomic script with backups, and into the rollback script.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, cast

from hardnir import platforms
from hardnir.facts import Facts
from hardnir.filesafe import Shape, UnsafeValue, vet_files
from hardnir.params import Param, ParamError, Problem, resolve
from hardnir.schema import SEVERITIES, Severity


class ControlError(ValueError):
    """Bad control selection or parameters (a usage error)."""


@dataclass(frozen=True)
class ControlMeta:
    id: str
    title: str
    section: str
    severity: Severity
    disruption: str  # low | medium | high: what applying the fix interrupts
    platforms: tuple[str, ...]
    rationale: str
    remediation: str = ""  # what the fix does, in one or two sentences
    references: tuple[str, ...] = ()  # guide sections and documents; CIS-style ids only where a real mapping exists
    version: str = "1"
    order: int = 50  # fixes run in ascending order on a host (etcd before its clients)
    lockout_risk: bool = False  # the fix can cut off the tool's own SSH or sudo
    serial: bool = False  # apply one host at a time (etcd members)


@dataclass(frozen=True)
class Finding:
    status: str  # pass | fail | not_applicable | error
    expected: str
    observed: str
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteFile:
    path: str
    content: str
    mode: str = "0644"
    owner: str = "root"
    group: str = "root"
    validate: str = ""  # a command run on the temp file ({tmp}) that must succeed before the move
    old_content: str | None = None  # for the dry-run diff


@dataclass(frozen=True)
class Symlink:
    path: str
    target: str
    old: str = ""


@dataclass(frozen=True)
class Remove:
    path: str
    old: str = ""


@dataclass(frozen=True)
class Exec:
    command: str
    undo: str
    why: str


Step = WriteFile | Symlink | Remove | Exec


@dataclass(frozen=True)
class Plan:
    """What a fix would do. An empty plan (no steps, not blocked) means nothing to change."""

    steps: tuple[Step, ...] = ()
    post: tuple[str, ...] = ()  # run after the steps when any step ran (daemon-reload, restart ...)
    rollback_post: tuple[str, ...] = ()
    precheck: tuple[str, ...] = ()  # commands that must succeed before anything changes
    blocked: str = ""  # non-empty: refused, with this reason
    lockout: str = ""  # non-empty: the change can cut off access; this says how
    deadman: bool = False  # arm a timer that rolls back unless a fresh login succeeds afterwards
    note: str = ""

    @property
    def empty(self) -> bool:
        return not self.steps and not self.post and not self.blocked

    def describe(self) -> str:
        """Human-readable diff of the plan: file diffs and commands, as the dry run prints them."""
        out: list[str] = []
        for step in self.steps:
            if isinstance(step, WriteFile):
                old = (step.old_content or "").splitlines(keepends=True)
                new = step.content.splitlines(keepends=True)
                label = "/dev/null" if step.old_content is None else step.path
                out.extend(difflib.unified_diff(old, new, label, step.path))
                out.append(f"# {step.path}: mode {step.mode} {step.owner}:{step.group}\n")
            elif isinstance(step, Symlink):
                out.append(f"ln -s {step.target} {step.path}   # was: {step.old or 'absent'}\n")
            elif isinstance(step, Remove):
                out.append(f"rm {step.path}   # backed up first; was: {step.old or 'a file'}\n")
            else:
                out.append(f"{step.command}   # {step.why}\n")
        out.extend(f"{cmd}\n" for cmd in self.post)
        return "".join(out)


def control_record(meta: ControlMeta) -> dict[str, object]:
    """The metadata auditors see, as a plain record (the rows of ``controls.json`` in a run directory)."""
    return {
        "control": meta.id,
        "title": meta.title,
        "section": meta.section,
        "severity": meta.severity,
        "rationale": meta.rationale,
        "remediation": meta.remediation,
        "references": list(meta.references),
        "version": meta.version,
        "platforms": list(meta.platforms),
    }


class ControlModule(Protocol):
    META: ControlMeta
    PARAMS: tuple[Param, ...]
    SHARED: tuple[str, ...]
    SHAPES: Mapping[str, Shape]

    def probe_items(self, params: Mapping[str, Any]) -> list[tuple[str, str]]: ...

    def check(self, facts: Facts, params: Mapping[str, Any]) -> Finding: ...

    def plan_fix(self, facts: Facts, params: Mapping[str, Any]) -> Plan: ...


@dataclass(frozen=True)
class Control:
    meta: ControlMeta
    module: ModuleType
    distribution: str = ""  # the package that installed it through `hardnir.controls`, and its version
    version: str = ""  # ('' for hardnir's own controls in `tasks/`)

    @property
    def fields(self) -> tuple[Param, ...]:
        return tuple(getattr(self.module, "PARAMS", ()))

    @property
    def shared(self) -> tuple[str, ...]:
        return tuple(getattr(self.module, "SHARED", ()))

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.fields if p.default is not None}

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def param_key(self) -> str:
        return self.meta.id.replace("-", "_")

    def resolve(self, host_data: Mapping[str, Any], address: str) -> tuple[dict[str, Any], list[Problem]]:
        """Validated parameters from a host's merged data (`hardnir.hostdata`), and every problem found."""
        return resolve(self.param_key, self.fields, self.shared, host_data, address)

    def params(self, host_data: Mapping[str, Any], address: str) -> dict[str, Any]:
        """Validated parameters, or ParamError naming the first bad key."""
        params, problems = self.resolve(host_data, address)
        if problems:
            raise ParamError(f"{self.id}: {problems[0]}")
        return params

    def probe_items(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        fn = cast(Callable[[Mapping[str, Any]], list[tuple[str, str]]], self.module.probe_items)
        return fn(params)

    @property
    def platform_notes(self) -> Mapping[str, str]:
        """Why the control does not apply on a platform outside `META.platforms` (module's `PLATFORM_NOTES`)."""
        return cast(Mapping[str, str], getattr(self.module, "PLATFORM_NOTES", {}))

    def on_platform(self, facts: Facts) -> platforms.Verdict:
        return platforms.judge(facts.platform, facts.platform_version, self.id, self.meta.platforms,
                               self.platform_notes)

    def check(self, facts: Facts, params: Mapping[str, Any]) -> Finding:
        """The module's verdict; `not_applicable` on a known platform the control was not written for, and a
        note on the finding for a platform hardnir does not know (`hardnir.platforms`)."""
        verdict = self.on_platform(facts)
        if not verdict.applies:
            return not_applicable(self.meta.title, verdict.reason, {"platform": facts.platform,
                                                       "platform_version": facts.platform_version})
        fn = cast(Callable[[Facts, Mapping[str, Any]], Finding], self.module.check)
        finding = fn(facts, params)
        if verdict.reason:
            finding = dataclasses.replace(finding, message=f"{finding.message}; {verdict.reason}")
        return finding

    def plan_fix(self, facts: Facts, params: Mapping[str, Any]) -> Plan:
        """The module's plan, refused (blocked) when a planned file does not re-parse as its declared shape.
        Nothing to do on a platform the control does not apply to."""
        if not self.on_platform(facts).applies:
            return Plan()
        fn = cast(Callable[[Facts, Mapping[str, Any]], Plan], self.module.plan_fix)
        try:
            plan = fn(facts, params)
        except UnsafeValue as exc:
            return Plan(blocked=f"refused: {exc}")
        files = [(s.path, s.content) for s in plan.steps if isinstance(s, WriteFile)]
        refusal = vet_files(files, getattr(self.module, "SHAPES", {}))
        return dataclasses.replace(plan, steps=(), post=(), blocked=refusal) if refusal else plan

    def serial_key(self, facts: Facts, params: Mapping[str, Any]) -> str:
        """For `serial` controls: hosts with the same key are fixed one at a time (an optional module hook)."""
        fn = getattr(self.module, "serial_key", None)
        return str(fn(facts, params)) if fn else "all"


_CATALOGUE: dict[str, Control] | None = None


def catalogue() -> dict[str, Control]:
    """Every control, by id, in fix order: the modules in `tasks/`, then those of `hardnir.controls` plugins."""
    global _CATALOGUE
    if _CATALOGUE is None:
        from hardnir.plugins import CONTROLS_GROUP, PluginError, load

        found: dict[str, Control] = {}
        for info in pkgutil.iter_modules(importlib.import_module("hardnir.tasks").__path__):
            module = importlib.import_module(f"hardnir.tasks.{info.name}")
            if isinstance(getattr(module, "META", None), ControlMeta):
                found[module.META.id] = _checked(Control(module.META, module))
        for plugin in load(CONTROLS_GROUP):
            meta = getattr(plugin.value, "META", None)
            if not isinstance(plugin.value, ModuleType) or not isinstance(meta, ControlMeta):
                raise PluginError(f"{plugin.where}: {CONTROLS_GROUP} must name a module with META = ControlMeta(...)")
            if meta.id != plugin.name or meta.id in found:
                raise PluginError(f"{plugin.where}: control id {meta.id!r} "
                                  + ("differs from the entry point name" if meta.id != plugin.name
                                     else "is already taken"))
            found[meta.id] = _checked(Control(meta, plugin.value, plugin.distribution, plugin.version))
        _CATALOGUE = {c.id: c for c in sorted(found.values(), key=lambda c: (c.meta.order, c.meta.id))}
    return _CATALOGUE


def _checked(control: Control) -> Control:
    if control.meta.severity not in SEVERITIES:
        raise ControlError(f"{control.id}: bad severity {control.meta.severity}")
    return control


def as_control(control: str | Control) -> Control:
    """A Control from itself or its id (Nornir tasks take either)."""
    if isinstance(control, Control):
        return control
    found = catalogue().get(control)
    if found is None:
        raise ControlError(f"unknown control id: {control} (known: {', '.join(catalogue())})")
    return found


def parse_ids(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
    return [p.strip() for p in parts if p.strip()]


def select(
    controls: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    severity: str | Iterable[str] | None = None,
) -> list[Control]:
    """Controls chosen by id, minus exclusions, filtered by minimum severity. Unknown ids are an error."""
    cat = catalogue()
    wanted = parse_ids(controls)
    dropped = parse_ids(exclude)
    unknown = [c for c in [*wanted, *dropped] if c not in cat]
    if unknown:
        raise ControlError(f"unknown control id(s): {', '.join(unknown)} (known: {', '.join(cat)})")
    chosen = [cat[c] for c in cat if (not wanted or c in wanted) and c not in dropped]
    levels = parse_ids(severity)
    if levels:
        bad = [s for s in levels if s not in SEVERITIES]
        if bad:
            raise ControlError(f"unknown severity: {', '.join(bad)} (one of {', '.join(SEVERITIES)})")
        floor = min(SEVERITIES.index(s) for s in levels)
        chosen = [c for c in chosen if SEVERITIES.index(c.meta.severity) >= floor]
    if not chosen:
        raise ControlError("the selection matches no control")
    return chosen


def write_if_changed(
    facts: Facts, path: str, content: str, mode: str = "0644", validate: str = ""
) -> list[Step]:
    """A WriteFile step unless the file already holds exactly this content (idempotency)."""
    current = facts.file(path)
    if current.kind == "file" and current.content == content and current.mode == mode.lstrip("0"):
        return []
    old = current.content if current.kind == "file" else None
    return [WriteFile(path, content, mode=mode, validate=validate, old_content=old)]


def not_applicable(expected: str, why: str, evidence: Mapping[str, Any] | None = None) -> Finding:
    return Finding("not_applicable", expected, "n/a", why, evidence or {})
