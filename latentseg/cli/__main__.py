"""``python -m latentseg.cli``: the ``latentseg`` command."""

from latentseg.cli import main

raise SystemExit(main())
