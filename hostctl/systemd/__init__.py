"""Pure helpers for writing systemd unit files: quoting, calendar expressions, unit names."""
