"""Exit codes of the `detector` command: 0 done, 1 failed, 2 bad usage, settings or input."""

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
