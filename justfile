# Recipes. Run `.ci/bootstrap` first on a new machine (the README's commands do it for you).

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := justfile_directory() / ".venv/bin"

# list the recipes
default:
    @just --list

# the main job on its embedded default: a full first boot from the demo seed against a throwaway
# PostgreSQL in a sandbox root, then the summary; everything is removed after (--keep keeps it)
demo *ARGS:
    @{{venv}}/python -m installer.demo {{ARGS}}

# check the filled demo seed and explain every resolved value and where it came from
demo-check:
    @{{venv}}/clawdie-setup check seed/demo-setup.txt --explain

# the fast suite: ruff, mypy --strict and every test not marked slow (a few minutes)
test *ARGS:
    {{venv}}/pytest -m "not slow" {{ARGS}}

# the slow tests only: the whole power-cut matrix, image and VM tests
slow-test *ARGS:
    {{venv}}/pytest -m slow {{ARGS}}

# everything CI runs: the fast suite, then the slow tests
test-all:
    {{just_executable()}} test
    {{just_executable()}} slow-test

# lint and type-check only
lint:
    {{venv}}/ruff check installer tests bench
    {{venv}}/ruff format --check installer tests bench
    {{venv}}/mypy --strict installer

# format the code
fmt:
    {{venv}}/ruff format installer tests bench
    {{venv}}/ruff check --fix installer tests bench

# check any setup.txt: just check path/to/setup.txt [--explain] [--json]
check FILE *ARGS:
    {{venv}}/clawdie-setup check {{FILE}} {{ARGS}}

# benchmark: cold start of `clawdie-setup check` against `cloud-init schema` (installs cloud-init)
bench-check:
    CLAWDIE_EXTRA_APT=cloud-init .ci/bootstrap
    {{venv}}/python bench/check_vs_cloud_init.py

# re-resolve the lock after changing dependencies in pyproject.toml
lock:
    {{venv}}/uv lock

# benchmark: PostgreSQL readiness detection, wait_for_db vs an `until pg_isready; sleep 1` loop (root)
bench-db:
    {{venv}}/python bench/db_ready.py

# benchmark: flash + verify against dd + cmp (and bmaptool copy) onto a loop device (root)
bench-flash *ARGS:
    {{venv}}/python bench/flash_vs_dd.py {{ARGS}}
