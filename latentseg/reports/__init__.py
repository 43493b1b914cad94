"""Tables 1-5, Figure 3 and the tolerance check, built from per-run metric files."""
