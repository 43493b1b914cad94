"""params.yaml -> each run's resolved configuration: the layers, their checks, the planted groups."""
