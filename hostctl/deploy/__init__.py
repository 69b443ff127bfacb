"""Stage 4: a deploy: plan against the hosts' facts, apply per host, health gate, roll back."""
