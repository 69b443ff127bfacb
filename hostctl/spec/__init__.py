"""Stage 1: the inventory and specs, parsed, validated and typed (parse -> validate)."""
