"""`python -m hostctl.jobs ...`: the hostctl command line (its job commands among them)."""

from hostctl.cli.root import main

main()
