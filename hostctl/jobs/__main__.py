"""`python -m hostctl.jobs ...`: the hostctl command line with the job commands registered,
whether or not hostctl.cli imports hostctl.cli_jobs yet."""

from hostctl import cli_jobs as _cli_jobs  # noqa: F401  (registers run, jobs, cancel)
from hostctl.cli import main

main()
