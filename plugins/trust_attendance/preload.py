"""Imported by the process that a LocalExecutor's task processes are forked from
(``[scheduler] mp_forkserver_preload``, ``TASK_PROCESS_SETTINGS`` in cli.py): the pipeline and
GX imported, and GX made ready (``validate.warm_up``), once there rather than in each task.
A school task forked from a process that had only imported GX spent about 0.35 s more on
its batch than one forked after the warm-up (ten schools, alternated)."""
from . import nightly  # noqa: F401 - the tasks' code
from .validate import warm_up

warm_up()
