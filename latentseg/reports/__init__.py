"""Tables 1-5 (mean ± spread over seeds), the paper's claims with verdicts, Figure 3, training curves and the
tolerance check, built from per-run metric files. Imports no torch: the report stages stay light."""
