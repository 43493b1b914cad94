"""A data set's runs as the training stage and the cluster's jobs make them: their folders, the pool of
workers, each run's evaluation record, progress and curves files, the classifiers' filtered evaluations, the
results written from them."""
