"""The `ivr` command line, one module per group of commands."""
