"""HTTP request bodies -> `Query`, with a 4xx `BadRequest` naming the problem for anything else.

Every field is checked by hand rather than by a schema library so that each mistake gets one
plain sentence (which field, what it holds, what it should hold), and nothing a client sends can
raise anything but `BadRequest`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from seqrec_cli.serving.engine import Bundle
from seqrec_cli.serving.queries import Query

FIELDS = ("user", "history", "k", "exclude_seen", "candidates", "exclude", "on_unknown", "explain")
MAX_IDS = 10_000  # ids in one list (history, candidates, exclude)


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Defaults:
    on_unknown: str = "error"


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadRequest(400, f"The body is not valid JSON ({exc}).") from None


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _is_id(value: Any) -> bool:
    if isinstance(value, str):
        return 0 < len(value) <= 200
    return isinstance(value, int) and not isinstance(value, bool)


def _id_list(body: dict, key: str, where: str) -> Optional[list]:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequest(422, f"{where}{key} must be a list of item ids, not {_kind(value)}.")
    if len(value) > MAX_IDS:
        raise BadRequest(422, f"{where}{key} holds {len(value)} ids; at most {MAX_IDS} are accepted.")
    for i, v in enumerate(value):
        if not _is_id(v):
            raise BadRequest(
                422, f"{where}{key}[{i}] must be an item id (an integer or a non-empty string), not {_kind(v)}."
            )
    return value


def _flag(body: dict, key: str, default: bool, where: str) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(422, f"{where}{key} must be true or false, not {_kind(value)}.")
    return value


def _rows(bundle: Bundle, ids: list, what: str, on_unknown: str, unknown: list[str], where: str) -> np.ndarray:
    rows, missing = [], []
    for v in ids:
        row = bundle.item_index.get(str(v))
        (rows if row is not None else missing).append(row if row is not None else str(v))
    if missing and on_unknown == "error":
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise BadRequest(
            422,
            f"Unknown item id{'s' if len(missing) > 1 else ''} in {where}{what}: {shown} (the "
            f'model knows {bundle.n_items} items); send "on_unknown": "skip" to skip them.',
        )
    unknown.extend(missing)
    return np.asarray(rows, dtype=np.int64)


def parse_query(body: Any, bundle: Bundle, defaults: Defaults, where: str = "") -> Query:
    """One recommendation request (`where` prefixes field names, e.g. `requests[3].`)."""
    if not isinstance(body, dict):
        raise BadRequest(422, f"{where.rstrip('.') or 'The body'} must be a JSON object, not {_kind(body)}.")
    extra = [k for k in body if k not in FIELDS]
    if extra:
        raise BadRequest(422, f"Unknown field {where}{extra[0]!s:.100}; the fields are {', '.join(FIELDS)}.")
    on_unknown = body.get("on_unknown", defaults.on_unknown)
    if on_unknown not in ("error", "skip"):
        raise BadRequest(422, f'{where}on_unknown must be "error" or "skip", not {_kind(on_unknown)}.')
    k = _k(body, bundle, where)
    unknown: list[str] = []
    history, gaps, user_row, label = _history(body, bundle, on_unknown, unknown, where)
    exclude_seen = _flag(body, "exclude_seen", True, where)
    extra_exclude = _id_list(body, "exclude", where)
    candidate_ids = _id_list(body, "candidates", where)
    exclude = history if exclude_seen else np.zeros(0, np.int64)
    if extra_exclude:
        exclude = np.concatenate([exclude, _rows(bundle, extra_exclude, "exclude", on_unknown, unknown, where)])
    candidates = None
    if candidate_ids is not None:
        candidates = _rows(bundle, candidate_ids, "candidates", on_unknown, unknown, where)
        if len(candidates) == 0:
            raise BadRequest(422, f"{where}candidates names no item the model knows: nothing to recommend from.")
    return Query(
        history=history,
        k=k,
        gaps=gaps,
        user_row=user_row,
        exclude=exclude,
        candidates=candidates,
        explain=_flag(body, "explain", False, where),
        label=label,
        unknown=unknown,
    )


def _k(body: dict, bundle: Bundle, where: str) -> int:
    k = body.get("k", 10)
    limit = min(bundle.k_max, bundle.n_items)
    if not isinstance(k, int) or isinstance(k, bool):
        raise BadRequest(422, f"{where}k must be an integer, not {_kind(k)}.")
    if not 1 <= k <= limit:
        raise BadRequest(
            422,
            f"{where}k={k} is out of range: this model recommends 1 to {limit} items "
            f"(catalogue {bundle.n_items}, bundle K range {bundle.meta['k_range']}).",
        )
    return k


def _history(
    body: dict, bundle: Bundle, on_unknown: str, unknown: list[str], where: str
) -> tuple[np.ndarray, Optional[np.ndarray], int, Any]:
    """(history rows, gap buckets or None, user-vector row, label) from `user` or `history`."""
    has_user, has_history = "user" in body, "history" in body
    if has_user == has_history:
        raise BadRequest(
            422,
            f'{where.rstrip(".") or "The request"} needs exactly one of "user" (a user id of '
            'the run\'s data) or "history" (item ids, oldest first).',
        )
    if has_user:
        user = body["user"]
        if not _is_id(user):
            raise BadRequest(
                422, f"{where}user must be a user id (an integer or a non-empty string), not {_kind(user)}."
            )
        if bundle.histories is None:
            raise BadRequest(
                422, 'This bundle holds no user histories (exported with histories=false): send "history" instead.'
            )
        position = bundle.histories.index.get(str(user))
        if position is None:
            raise BadRequest(
                404, f"Unknown user id {str(user)[:100]}: the bundle knows {len(bundle.histories.index)} users."
            )
        history, gaps, row = bundle.histories.of(position)
        if len(history) == 0:
            raise BadRequest(422, f"User {user} has no events of items the model knows.")
        return history, gaps, row, user
    if bundle.meta["uses_time_gaps"]:
        raise BadRequest(
            422,
            "This model uses time gaps (encoder.time_features=gap), which a typed history does "
            'not have: ask by "user" instead.',
        )
    ids = _id_list(body, "history", where)
    if not ids:
        raise BadRequest(422, f"{where}history is empty: give at least one item id, oldest first.")
    rows = _rows(bundle, ids, "history", on_unknown, unknown, where)
    if len(rows) == 0:
        raise BadRequest(422, f"No item of {where}history is known to the model: nothing to recommend after.")
    return rows, None, 0, None
