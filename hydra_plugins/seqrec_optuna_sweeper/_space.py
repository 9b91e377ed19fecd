"""The search space: Hydra sweep overrides (`hydra.sweeper.params` + command line) → Optuna distributions.

Syntax, as the released Hydra Optuna sweeper reads it (`range` as Hydra reads it, end excluded):
  interval(a, b)              float in [a, b]
  int(interval(a, b))         int in [a, b]
  tag(log, interval(a, b))    log-uniform (also with int(...)); needs a > 0
  choice(x, y, ...) / x,y     categorical
  range(a, b[, step])         a, a+step, ... below b (ints unless a float is given); shuffle(range) → categorical
  anything else               fixed value, the same in every trial
A mistake here is the user's, found before any trial runs: `SearchSpaceError` with one sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

PRIMITIVES = (str, int, float, bool)


class SearchSpaceError(ValueError):
    """A search space that cannot be searched; the message is one sentence naming the parameter."""


@dataclass
class SearchSpace:
    distributions: Dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: Dict[str, str] = field(default_factory=dict)  # key -> value as typed, same in every trial
    deletions: List[str] = field(default_factory=list)  # `~key` overrides, passed through

    def fixed_overrides(self) -> List[str]:
        return [f"{k}={v}" for k, v in self.fixed.items()] + list(self.deletions)


def parse_search_space(lines: Sequence[str]) -> SearchSpace:
    """Later lines win for the same key, so the command line overrides `hydra.sweeper.params`."""
    parser = OverridesParser.create()
    space = SearchSpace()
    for line in lines:
        try:
            override = parser.parse_override(line)
        except Exception as exc:  # Hydra's grammar errors: HydraException, OverrideParseException
            raise SearchSpaceError(f"Cannot read the search-space entry '{line}': {_first_line(exc)}.") from None
        if override.is_delete():
            space.deletions.append(line)
            continue
        key = override.get_key_element()
        space.distributions.pop(key, None)
        space.fixed.pop(key, None)
        if override.is_sweep_override():
            space.distributions[key] = distribution(override, line)
        else:
            space.fixed[key] = override.get_value_element_as_str()
    return space


def distribution(override: Override, line: str) -> BaseDistribution:
    value = override.value()
    if isinstance(value, Glob):
        raise SearchSpaceError(
            f"'{line}': glob(...) selects config files and cannot be searched by Optuna; use choice(...) instead."
        )
    if isinstance(value, IntervalSweep):
        return _interval(value, line)
    if isinstance(value, RangeSweep):
        return _range(override, value, line)
    if isinstance(value, ChoiceSweep):
        return _categorical(list(override.sweep_iterator(transformer=Transformer.encode)), line)
    raise SearchSpaceError(f"'{line}' is not a sweep Optuna can search: use interval, choice or range.")


def _interval(value: IntervalSweep, line: str) -> BaseDistribution:
    low, high, log = value.start, value.end, "log" in value.tags
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
        raise SearchSpaceError(f"'{line}': an interval needs two finite numbers.")
    if low > high:
        raise SearchSpaceError(f"'{line}' is empty: its lower end {low} is above its upper end {high}.")
    if log and low <= 0:
        raise SearchSpaceError(f"'{line}': a log-scaled interval needs a lower end above 0, not {low}.")
    if isinstance(low, int) and isinstance(high, int):  # int(interval(...))
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _range(override: Override, value: RangeSweep, line: str) -> BaseDistribution:
    values = list(override.sweep_iterator(transformer=Transformer.encode))
    if not values:
        raise SearchSpaceError(f"'{line}' is empty: range(start, stop, step) stops before its first value.")
    if value.shuffle:
        return _categorical(values, line)
    step = value.step if value.step is not None else 1
    if step <= 0:
        raise SearchSpaceError(f"'{line}': Optuna needs a range with a positive step.")
    if all(isinstance(v, int) for v in (value.start, step)):
        return IntDistribution(int(values[0]), int(values[-1]), step=int(step))
    return FloatDistribution(float(values[0]), float(values[-1]), step=float(step))


def _categorical(choices: List[Any], line: str) -> CategoricalDistribution:
    if not choices:
        raise SearchSpaceError(f"'{line}' offers no value to choose from.")
    for choice in choices:
        if not isinstance(choice, PRIMITIVES):
            raise SearchSpaceError(
                f"'{line}': Optuna chooses only among strings, numbers and booleans, not {type(choice).__name__}."
            )
    return CategoricalDistribution(choices)


def override_value(value: Any) -> str:
    """A sampled value as Hydra's override grammar reads it back (true/false/null, not True/None)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def representative(dist: BaseDistribution) -> Any:
    """A value every trial's config can take the shape of: used to compose a config before the study."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[0]
    return dist.low  # type: ignore[attr-defined]


def grid_values(key: str, dist: BaseDistribution) -> List[Any]:
    """The grid sampler's points for one parameter: only discrete distributions have them."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    step = getattr(dist, "step", None)
    if isinstance(dist, IntDistribution) and not dist.log:
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and step:
        n = int(round((dist.high - dist.low) / step))
        return [dist.low + i * step for i in range(n + 1)]
    raise SearchSpaceError(
        f"The grid sampler needs discrete values for {key}: use choice(...), range(...) "
        "or int(interval(...)) instead of a float interval."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__
