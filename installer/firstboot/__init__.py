"""First boot on the installed system: the runner, its steps, stamps, the database and
the Telegram report."""
