"""Running jobs on SLURM: execution profiles, submission through submitit, job states and logs,
and the rendezvous settings of multi-process jobs."""
