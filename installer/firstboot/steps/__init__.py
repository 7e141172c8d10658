"""First-boot steps: one small module each, `apply(ctx) -> StepRecord`, idempotent, checking
before acting. `installer.firstboot.runner` runs them in order and stamps each one.

Steps are independent plug-ins: a step imports `installer.firstboot.context` and shared helpers
(`envfile`, `platform_db`, `passwd`, `db`), never another step.
"""
