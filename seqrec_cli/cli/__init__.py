"""The command-line front ends: compose the config, call the pipeline, map errors to exit codes.

Each module imports only the standard library at the top, so `--help`, `--cfg job` and shell
completion never wait for torch or pandas, and a Ctrl-C during start-up is one line, not a
traceback through an import.
"""
