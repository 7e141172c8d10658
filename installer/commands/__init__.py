"""One module per `clawdie-setup` subcommand.

Each module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`. The CLI
imports only the module of the command being run, so `check` never pays for textual or psycopg.
"""
