"""The command line: presentation only, over the stage packages."""
