"""Job functions of the tests: importable by module path (tests._jobs.NAME), because
process pools, Dask and Slurm workers import them by name and cannot use test modules."""
