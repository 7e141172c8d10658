"""First boot on the installed system: the runner, its steps, stamps, the database and
the Telegram report. The steps share only what lives here, beside them: the config, the step
context, the env-file format, the platform's database access and the passwd/shadow readers."""
