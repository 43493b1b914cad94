"""Helpers that compute nothing of a run: atomic files, progress lines, devices, import closures, the warm
interpreter."""
