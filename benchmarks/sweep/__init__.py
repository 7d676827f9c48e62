"""``bench sweep``: a YAML suite expanded into single-seed runs (:mod:`.suite`, the suite
language), run by local worker processes or by Ray, resumable and tolerant of failing runs
(:mod:`.executors`)."""

from .executors import JobOutcome, SweepSummary, execute_job, iter_failures, run_sweep
from .suite import (EXECUTORS, SUITES_DIR, SweepJob, SweepPlan, expand_suite, failure_path_for, find_suite, load_suite,
                    planned_result_paths, suite_entries)

__all__ = ["EXECUTORS", "SUITES_DIR", "JobOutcome", "SweepJob", "SweepPlan", "SweepSummary", "execute_job",
           "expand_suite", "failure_path_for", "find_suite", "iter_failures", "load_suite", "planned_result_paths",
           "run_sweep", "suite_entries"]
