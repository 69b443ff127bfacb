"""hostctl: deploy dockerised services and jobs as systemd units on plain Linux hosts."""

__version__ = "0.1.0"
