"""What every section of `launchbay.yaml` shares: strict models, durations, names, quantities."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def valid_name(name: str) -> bool:
    """Whether `name` can name a model (a DNS label: it names services and routes later)."""
    return bool(_NAME.match(name))


class Section(BaseModel):
    # Attribute docstrings become the JSON Schema's descriptions (editors show them; docs print them).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


_K8S_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


# A Kubernetes resource quantity as people write them ("500m", "2", "1.5Gi"): checked here so a
# typo is named in launchbay.yaml, not refused later by the API server or Argo.
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"


Quantity = Annotated[str, Field(pattern=_QUANTITY)]


def _seconds(value: object) -> float:
    """Accept 30, 1.5, "500ms", "30s", "2m", "1h", "14d" and return seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 2m or 500ms")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(value))
        if not m:
            raise ValueError("expected a duration such as 30s, 2m or 500ms")
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
        seconds = float(m.group(1)) * units[m.group(2)]
    if seconds <= 0:
        raise ValueError("expected a positive duration")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(_seconds),
    # What the file may say (the JSON Schema editors check it with), not the seconds it becomes.
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"},
            ],
            "description": "seconds, or a duration such as 500ms, 30s, 2m, 1h, 14d",
        }
    ),
]
