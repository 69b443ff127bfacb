"""What hostctl runs on hosts: scripts built by pure functions, and parsers of their output."""
