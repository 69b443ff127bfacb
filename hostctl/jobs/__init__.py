"""Job runs on hosts: `hostctl run`, `jobs`, `cancel`.

- records: run records as hosts keep them, and their parser (pure);
- hostside: scripts sent to hosts (install the queue helper, submit, read, cancel) and the
  parser of their output (pure); hostctl-jobs.sh is the helper itself (the host's queue,
  GPU leases, outcomes, retries);
- plan: which hosts, how many runs each can take, the runs to submit (pure);
- ops: the same over connected runners (submit, wait, follow, shards, cancel);
- view: tables and the live progress of shards.
"""
