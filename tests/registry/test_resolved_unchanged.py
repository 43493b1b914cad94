"""params.yaml resolves to the configurations recorded in resolved.json (tests/registry/snapshot.py): a change to
the settings' layers, or a move of a value between them, changes no experiment's run."""

import json

from latentseg.registry.params import load_params
from tests.registry.snapshot import FILE, ROOT, digests


def test_every_resolved_configuration_is_the_recorded_one():
    recorded = json.loads(FILE.read_text())
    found = digests(load_params(ROOT / "params.yaml"))
    changed = sorted(k for k in recorded.keys() | found.keys() if recorded.get(k) != found.get(k))
    assert changed == [], (f"{len(changed)} resolved configuration(s) differ from {FILE.name}: {changed[:8]}; after "
                           "a deliberate change: python -m tests.registry.snapshot --write")
