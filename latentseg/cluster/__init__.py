"""Running the pipeline's runs on a Slurm cluster (``latentseg submit``): which runs are pending, the Slurm jobs
that train and evaluate them (submitit), and the table that watches them. ``dvc repro`` afterwards finds each run
finished (its checkpoint's identity) and evaluated (its evaluation record) and reuses both."""
