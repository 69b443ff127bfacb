"""`python -m hostctl.jobs ...`: the hostctl command line with the job commands registered,
whether or not hostctl.cli.root imports hostctl.cli.jobs yet."""

from hostctl.cli import jobs as _cli_jobs  # noqa: F401  (registers run, jobs, cancel)
from hostctl.cli.root import main

main()
