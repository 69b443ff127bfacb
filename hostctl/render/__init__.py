"""Stage 2: the files each host should have, built by pure functions from a Site."""
