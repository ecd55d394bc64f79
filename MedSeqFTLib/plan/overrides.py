"""Plan values and user overrides on top of the workspace configuration.

A task trains with ``effective_config``: the workspace's ``WorkspaceConfig``, then the task's
plan (``task.json`` ``plan.values``), then the workspace-wide overrides (``workspace.json``
``overrides``), then the task's own overrides (``task.json`` ``overrides``). Keys are dotted
paths into the configuration (``preprocess.spacing``, ``retention.fft.iterations``,
``recipe.augment``); every result is validated by the config dataclasses, so a bad value is
refused when it is set, with the key in the message.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Mapping

from ..config import WorkspaceConfig
from ..errors import InputError

__all__ = ["effective_config", "parse_assignment", "apply_values", "known_keys", "flatten", "update_overrides",
           "FROZEN_PREFIXES"]

# the backbone is shared by every task of a sequence: it cannot differ per task
FROZEN_PREFIXES = ("arch",)


def flatten(tree: Mapping, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and tuples are leaves)."""
    out = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def known_keys(cfg: WorkspaceConfig | None = None) -> list[str]:
    """Every settable dotted key (leaves of the configuration)."""
    return sorted(k for k in flatten((cfg or WorkspaceConfig()).to_dict()) if not k.startswith(FROZEN_PREFIXES))


def _set(tree: dict, key: str, value: Any, where) -> None:
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            raise InputError(where, f"unknown setting {key!r} (see 'medseqft plan --keys')")
        node = node[part]
    if parts[-1] not in node or isinstance(node[parts[-1]], dict) and not isinstance(value, dict):
        raise InputError(where, f"unknown setting {key!r} (see 'medseqft plan --keys')")
    node[parts[-1]] = value


def apply_values(cfg: WorkspaceConfig, values: Mapping[str, Any], where) -> WorkspaceConfig:
    """``cfg`` with each dotted key of ``values`` set, validated.

    Raises:
        InputError: an unknown or frozen key, or a value the configuration refuses.
    """
    if not values:
        return cfg
    tree = copy.deepcopy(cfg.to_dict())
    for key, value in values.items():
        if key.startswith(FROZEN_PREFIXES):
            raise InputError(where, f"{key!r} is shared by the whole sequence and cannot be set per task")
        _set(tree, key, value, where)
    return WorkspaceConfig.from_dict(tree, where=str(where))


def effective_config(base: WorkspaceConfig, task_record: Mapping, workspace_overrides: Mapping | None = None,
                     where="task.json") -> WorkspaceConfig:
    """The configuration a task trains and predicts with (see the module docstring)."""
    cfg = apply_values(base, (task_record.get("plan") or {}).get("values") or {}, where)
    cfg = apply_values(cfg, workspace_overrides or {}, where)
    return apply_values(cfg, task_record.get("overrides") or {}, where)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> ``(key, value)``.

    VALUE is read as JSON where it parses (``3``, ``1e-3``, ``true``, ``null``, ``[1, 2]``), as
    a list for comma-separated numbers (``1.5,1.5,3``), else as a string (``poly``).

    Raises:
        InputError: no ``=`` or an empty key.
    """
    if "=" not in text:
        raise InputError("--set", f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key:
        raise InputError("--set", f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        pass
    if "," in raw:
        try:
            return key, [json.loads(p) for p in raw.split(",")]
        except json.JSONDecodeError:
            pass
    return key, raw


def update_overrides(ws, task, assignments, unsets, replan: bool = False, device: str = "auto", reporter=None) -> None:
    """Record ``--set``/``--unset`` (and ``--replan``) for one task or, with ``task=None``, the workspace.

    Everything is validated against every affected task's resulting configuration before the
    first write. Refined tasks keep the configuration they were trained with.

    Raises:
        InputError: a bad assignment, unknown key, refused value, or a change to a refined task.
    """
    from ..io.atomic import atomic_write_json, read_json
    from .task_plan import fingerprint_path, fingerprint_task, plan_task

    values = dict(parse_assignment(a) for a in assignments)
    names = [task] if task else ws.task_names()
    done = [n for n in names if ws.task(n).get("status") == "done"]
    if task and done:
        raise InputError("--task", f"{task!r} is already refined; its settings are fixed (they are in its "
                                   "model record). Add the data as a new task to train with other settings")
    targets = [n for n in names if n not in done]
    scope = ws.task(task).get("overrides") or {} if task else ws.manifest.get("overrides") or {}
    bad = [k for k in unsets if k not in scope]
    if bad:
        raise InputError("--unset", f"{bad[0]!r} is not overridden {'for ' + task if task else 'in the workspace'}")
    new_scope = {k: v for k, v in scope.items() if k not in unsets}
    new_scope.update(values)
    records = {n: ws.task(n) for n in targets}
    if replan:
        for n in targets:
            fp_path = fingerprint_path(ws, n)
            rec = records[n]
            if fp_path.is_file():
                fingerprint = read_json(fp_path)
            else:
                train = set(rec["split"]["train"])
                fingerprint = fingerprint_task({**rec, "cases": [c for c in rec["cases"] if c["id"] in train]}, reporter, n)
                atomic_write_json(fp_path, fingerprint)
            rec["plan"] = plan_task(ws, rec, fingerprint, device)
    ws_over = ws.manifest.get("overrides") or {}
    for n in targets:  # validate every affected task before writing anything
        rec = dict(records[n])
        if task:
            rec["overrides"] = new_scope
        effective_config(ws.config, rec, ws_over if task else new_scope, where=f"--set ({n})")
    if not targets:
        apply_values(ws.config, new_scope, "--set")
    for n in targets:
        if task:
            records[n]["overrides"] = new_scope
        ws.save_task(n, records[n])
    if not task:
        ws.update_manifest(lambda m: m.__setitem__("overrides", new_scope))
