"""PostgreSQL for first boot and the database commands, one module a concern:

- `ready`: wait until the server really answers queries; retries bounded by one deadline
- `bootstrap`: the platform role and its `system_*` databases
- `auth`: the dashboard's auth tables (Better Auth schema), its password hash and the operator

Import the module you need: this package imports none of them, so `wait-db` loads only `ready`.
"""
