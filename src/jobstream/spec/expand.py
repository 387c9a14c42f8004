"""Expand each job, file and user data entry into one draft per parameter combination.

Every string field of a parameterized entry is a template: name, command,
invocation_script, env values, resource_requirements, failure_handler, scheduler, label
and every item of the name and regex lists (files: name, path, identifier; user data: name
and every string inside ``data``). Templates are compiled once per entry and only the
fields that contain placeholders are re-rendered per combination, which keeps a
1,000,000-job range expansion to a few seconds.

Unknown names: a ``{name}`` token that is not a parameter of the entry is left as is in
commands, scripts, env values, paths and regexes (it may be shell, Python or regex
syntax, as in torc). In the *name-like* fields of a parameterized entry (its name and
the names it references) such a token is an error, because it is almost always a typo
of a parameter and would otherwise surface later as a duplicate or unknown name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from jobstream.spec.locate import KeyPath, Locator
from jobstream.spec.params import ParamSpace
from jobstream.spec.raw import EnvValue, RawFile, RawJob, RawUserData
from jobstream.spec.templates import (
    Template,
    TemplateError,
    Value,
    compile_template,
    display,
    template_tokens,
)

TEXT_FIELDS = (
    "name",
    "command",
    "invocation_script",
    "resource_requirements",
    "failure_handler",
    "scheduler",
    "label",
)
LIST_FIELDS = (
    "depends_on",
    "depends_on_regexes",
    "input_files",
    "input_file_regexes",
    "output_files",
    "output_file_regexes",
    "input_user_data",
    "input_user_data_regexes",
    "output_user_data",
    "output_user_data_regexes",
    "input_datasets",
    "output_datasets",
)
_NAME_TEXTS = ("name", "resource_requirements", "failure_handler", "scheduler")
_NAME_LISTS = (
    "depends_on",
    "input_files",
    "output_files",
    "input_user_data",
    "output_user_data",
    "input_datasets",
    "output_datasets",
)

Compiled = str | Template


class JobDraft:
    """One expanded job before references are resolved; ``template`` is its spec entry."""

    __slots__ = ("template", "env", *TEXT_FIELDS, *LIST_FIELDS)

    def __init__(
        self,
        template: int,
        texts: Sequence[str | None],
        env: dict[str, str],
        lists: Sequence[tuple[str, ...]],
    ) -> None:
        self.template = template
        self.name: str = texts[0] or ""
        self.command: str = texts[1] or ""
        self.invocation_script = texts[2]
        self.resource_requirements = texts[3]
        self.failure_handler = texts[4]
        self.scheduler = texts[5]
        self.label = texts[6]
        self.env = env
        self.depends_on = lists[0]
        self.depends_on_regexes = lists[1]
        self.input_files = lists[2]
        self.input_file_regexes = lists[3]
        self.output_files = lists[4]
        self.output_file_regexes = lists[5]
        self.input_user_data = lists[6]
        self.input_user_data_regexes = lists[7]
        self.output_user_data = lists[8]
        self.output_user_data_regexes = lists[9]
        self.input_datasets = lists[10]
        self.output_datasets = lists[11]


class FileDraft:
    """One expanded file entry."""

    __slots__ = ("identifier", "name", "path", "template")

    def __init__(self, template: int, name: str, path: str, identifier: str | None) -> None:
        self.template = template
        self.name = name
        self.path = path
        self.identifier = identifier


class UserDataDraft:
    """One expanded user data entry."""

    __slots__ = ("data", "is_ephemeral", "name", "template")

    def __init__(self, template: int, name: str, data: Any, is_ephemeral: bool) -> None:
        self.template = template
        self.name = name
        self.data = data
        self.is_ephemeral = is_ephemeral


def env_text(value: EnvValue) -> str:
    """Environment values are strings; numbers and booleans are written out."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return display(value)


def _check_names(
    space: ParamSpace, fields: list[tuple[KeyPath, str | None]], kind: str, loc: Locator
) -> None:
    for key, text in fields:
        for token in template_tokens(text or ""):
            if token not in space.names:
                loc.fail(
                    key,
                    f"'{{{token}}}' is not a parameter of this {kind}; "
                    f"its parameters are: {', '.join(space.names)}",
                )


def _format_error(
    exc: TemplateError, fields: list[tuple[KeyPath, Compiled]], loc: Locator
) -> NoReturn:
    for key, compiled in fields:
        if isinstance(compiled, Template) and compiled.uses(exc.name, exc.spec):
            loc.fail(key, str(exc))
    loc.fail(fields[0][0] if fields else (), str(exc))


def expand_job(
    index: int, raw: RawJob, space: ParamSpace | None, base_env: dict[str, str], loc: Locator
) -> list[JobDraft]:
    """The drafts of job entry ``index`` (``base_env`` is the workflow-level env)."""
    key: KeyPath = ("jobs", index)
    texts: list[str | None] = [getattr(raw, f) for f in TEXT_FIELDS]
    lists = [tuple(getattr(raw, f) or ()) for f in LIST_FIELDS]
    job_env = {name: env_text(value) for name, value in (raw.env or {}).items()}
    if space is None:
        return [JobDraft(index, texts, {**base_env, **job_env}, lists)]

    names_to_check = [((*key, f), getattr(raw, f)) for f in _NAME_TEXTS]
    for field in _NAME_LISTS:
        position = LIST_FIELDS.index(field)
        names_to_check += [((*key, field, i), t) for i, t in enumerate(lists[position])]
    _check_names(space, names_to_check, "job", loc)

    templates = _JobTemplates.compile(texts, lists, base_env, job_env, space.names)
    try:
        return [templates.draft(index, combo) for combo in space.combos()]
    except TemplateError as exc:
        _format_error(exc, templates.fields(key), loc)


@dataclass(frozen=True)
class _JobTemplates:
    """A job entry's fields, compiled once: the ones that use parameters are rendered
    per combination, the rest are shared by every draft."""

    texts: list[str | None]
    lists: list[tuple[str, ...]]
    base_env: dict[str, str]
    constant_env: dict[str, str]
    dyn_texts: list[tuple[int, Template]]
    dyn_lists: list[tuple[int, tuple[Compiled, ...]]]
    env: dict[str, Compiled]  # the job's own env, compiled
    dyn_env: bool

    @classmethod
    def compile(
        cls,
        texts: list[str | None],
        lists: list[tuple[str, ...]],
        base_env: dict[str, str],
        job_env: dict[str, str],
        names: tuple[str, ...],
    ) -> _JobTemplates:
        dyn_texts = [
            (i, c)
            for i, text in enumerate(texts)
            if text is not None and isinstance(c := compile_template(text, names), Template)
        ]
        dyn_lists: list[tuple[int, tuple[Compiled, ...]]] = []
        for i, items in enumerate(lists):
            compiled = tuple(compile_template(item, names) for item in items)
            if any(isinstance(c, Template) for c in compiled):
                dyn_lists.append((i, compiled))
        env = {name: compile_template(value, names) for name, value in job_env.items()}
        dyn_env = any(isinstance(c, Template) for c in env.values())
        return cls(
            texts, lists, base_env, {**base_env, **job_env}, dyn_texts, dyn_lists, env, dyn_env
        )

    def draft(self, index: int, combo: Sequence[Value]) -> JobDraft:
        """The job for one combination of parameter values."""
        texts = self.texts
        if self.dyn_texts:
            texts = list(texts)
            for i, compiled_text in self.dyn_texts:
                texts[i] = compiled_text.render(combo)
        lists = self.lists
        if self.dyn_lists:
            lists = list(lists)
            for i, items in self.dyn_lists:
                lists[i] = tuple(_render(c, combo) for c in items)
        env = self.constant_env
        if self.dyn_env:
            env = {**self.base_env, **{k: _render(c, combo) for k, c in self.env.items()}}
        return JobDraft(index, texts, env, lists)

    def fields(self, key: KeyPath) -> list[tuple[KeyPath, Compiled]]:
        """Where each parameterized field is, for an error that names it."""
        found: list[tuple[KeyPath, Compiled]] = [
            ((*key, TEXT_FIELDS[i]), c) for i, c in self.dyn_texts
        ]
        for i, items in self.dyn_lists:
            found += [((*key, LIST_FIELDS[i], j), c) for j, c in enumerate(items)]
        return found + [((*key, "env", k), c) for k, c in self.env.items()]


def _render(compiled: Compiled, combo: Sequence[Value]) -> str:
    return compiled if isinstance(compiled, str) else compiled.render(combo)


def expand_file(
    index: int, raw: RawFile, space: ParamSpace | None, loc: Locator
) -> list[FileDraft]:
    """The drafts of file entry ``index``."""
    if space is None:
        return [FileDraft(index, raw.name, raw.path, raw.identifier)]
    key: KeyPath = ("files", index)
    _check_names(space, [((*key, "name"), raw.name)], "file", loc)
    name = compile_template(raw.name, space.names)
    path = compile_template(raw.path, space.names)
    ident = compile_template(raw.identifier, space.names) if raw.identifier is not None else None
    drafts: list[FileDraft] = []
    try:
        for combo in space.combos():
            rendered = _render(ident, combo) if ident is not None else None
            drafts.append(FileDraft(index, _render(name, combo), _render(path, combo), rendered))
    except TemplateError as exc:
        fields: list[tuple[KeyPath, Compiled]] = [((*key, "name"), name), ((*key, "path"), path)]
        if ident is not None:
            fields.append(((*key, "identifier"), ident))
        _format_error(exc, fields, loc)
    return drafts


def expand_user_data(
    index: int, raw: RawUserData, space: ParamSpace | None, loc: Locator
) -> list[UserDataDraft]:
    """The drafts of user data entry ``index``; strings inside ``data`` are templates too."""
    ephemeral = bool(raw.is_ephemeral)
    if space is None:
        return [UserDataDraft(index, raw.name, raw.data, ephemeral)]
    key: KeyPath = ("user_data", index)
    _check_names(space, [((*key, "name"), raw.name)], "user data entry", loc)
    name = compile_template(raw.name, space.names)
    drafts: list[UserDataDraft] = []
    try:
        for combo in space.combos():
            data = _render_data(raw.data, space.names, combo)
            drafts.append(UserDataDraft(index, _render(name, combo), data, ephemeral))
    except TemplateError as exc:
        if isinstance(name, Template) and name.uses(exc.name, exc.spec):
            loc.fail((*key, "name"), str(exc))
        loc.fail((*key, "data"), str(exc))
    return drafts


def _render_data(value: Any, names: Sequence[str], combo: Sequence[Value]) -> Any:
    if isinstance(value, str):
        return _render(compile_template(value, names), combo)
    if isinstance(value, list):
        return [_render_data(v, names, combo) for v in value]
    if isinstance(value, dict):
        return {k: _render_data(v, names, combo) for k, v in value.items()}
    return value
