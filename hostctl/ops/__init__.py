"""Commands on running hosts beside deploy: status and the day-two actions."""
