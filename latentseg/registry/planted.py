"""The planted groups of the current profile's data: a data set's demo stand-in is drawn with supercategories
(``latentseg/datasets/<name>.py``: ``planted_groups``) that the latent classes may recover; real data has none.

Which data a profile trains on is what stage ``prepare`` reads: ``profiles.<profile>.datasets.<name>.synthetic``
set means the embedded stand-in, else the official release. Claims about planted groups, the recovery metric and
the group labels of the figures follow from here, so that the paper profile shows them as not applicable.
"""

from __future__ import annotations

from typing import Any

from latentseg.datasets import get
from latentseg.registry.params import profile_section


def planted_groups(params: dict[str, Any], dataset: str) -> dict[str, list[str]] | None:
    """``{group: [class, ...]}`` of ``dataset``'s data in the current profile, or None (real data: no groups)."""
    _, profile = profile_section(params)
    section = (profile.get("datasets") or {}).get(dataset) or {}
    if section.get("synthetic") is None:
        return None
    groups = get(dataset).planted_groups
    return {name: list(members) for name, members in groups.items()} if groups else None

