"""``python -m latentseg.bench``: the same as ``latentseg bench``."""

from latentseg.bench import main

raise SystemExit(main())
