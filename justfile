# Recipes. Run `.ci/bootstrap` first on a new machine (the README's commands do it for you).

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := justfile_directory() / ".venv/bin"

# list the recipes (the just that runs this one: .venv/bin/just needs no `just` on the PATH)
default:
    @{{just_executable()}} --list --unsorted

# the main job on its embedded default: a full first boot from the demo seed against a throwaway
# PostgreSQL in a sandbox root, then the summary; everything is removed after (--keep keeps it)
[doc("the main job: a full demo first boot against a throwaway PostgreSQL (or: just demo your/setup.txt)")]
demo *ARGS:
    @cd {{quote(invocation_directory())}} && {{venv}}/python -m installer.dev.demo {{ARGS}}

# check the filled demo seed and explain every resolved value and where it came from
demo-check:
    @{{venv}}/clawdie-setup check seed/demo-setup.txt --explain

# the fast suite: ruff, mypy --strict and every test not marked slow or boot (a few minutes)
test *ARGS:
    {{venv}}/pytest -m "not slow and not boot" {{ARGS}}

# Debian packages the slow tests need on top of .ci/bootstrap's own: the existing-host test boots
# a debootstrap root with systemd-nspawn
slow_apt := "debootstrap systemd-container"

# the slow tests: the whole power-cut matrix, bigger loop-device and harness tests, and the
# existing host (a Debian 12 root booted with systemd-nspawn; its root is cached in
# /var/cache/clawdie-iso/existing-host)
[doc("the slow tests: the power-cut matrix, bigger loop-device and harness tests, the existing host")]
slow-test *ARGS:
    CLAWDIE_EXTRA_APT="{{slow_apt}}" .ci/bootstrap
    {{venv}}/pytest -m "slow and not boot" {{ARGS}}

# only the existing-host test: install-platform on a booted Debian 12 root, ana left alone
existing-host-test *ARGS:
    CLAWDIE_EXTRA_APT="{{slow_apt}}" .ci/bootstrap
    {{venv}}/pytest -m slow -s tests/test_existing_host.py {{ARGS}}

# everything CI runs, in two rounds of two jobs side by side (2 cores): the fast suite while the
# image builds, then the slow tests while the image boots under QEMU (two lanes); each job's lines
# carry its name, and the run fails when any job does
[doc("everything CI runs: the fast suite, the slow tests, the image built and booted under QEMU")]
test-all:
    #!/usr/bin/env bash
    set -uo pipefail
    CLAWDIE_EXTRA_APT="{{slow_apt}} {{iso_apt}}" .ci/bootstrap || exit 1
    job() { bash -c "$2" 2>&1 | sed -u "s/^/$1 | /"; }
    both() {  # run two jobs side by side; fail when either does, after both end
        job "$1" "$2" & local first=$!
        job "$3" "$4"; local second=$?
        wait $first; local one=$?
        [ $one -eq 0 ] && [ $second -eq 0 ]
    }
    started=$SECONDS
    both fast "{{venv}}/pytest -m 'not slow and not boot'" image "{{venv}}/python iso/build.py" \
        || { echo "test-all: the fast suite or the image build failed"; exit 1; }
    echo "test-all: fast suite and image: $((SECONDS - started)) s"
    rm -f build/iso/boot-test/figures.json
    both slow "{{venv}}/pytest -m 'slow and not boot'" \
        boot "{{venv}}/pytest -m boot -n {{boot_workers}} --dist loadgroup --durations=25" \
        || { echo "test-all: the slow tests or the boot tests failed"; exit 1; }
    echo "test-all: everything passed in $((SECONDS - started)) s"

# Debian packages the image build and the boot test need on top of .ci/bootstrap's own (which
# already has xorriso, squashfs-tools, GRUB, QEMU and OVMF for the fast suite's harness tests)
iso_apt := "debootstrap zstd qemu-utils fusefat e2fsprogs systemd hostapd dnsmasq-base"

# build the installer image (root, Debian 12) into build/iso: the .iso, .sha256 and .manifest;
# the Debian base is cached in /var/cache/clawdie-iso (CLAWDIE_ISO_CACHE); --platform DIR
# (or CLAWDIE_PLATFORM) takes the real platform payload instead of the reference one
[doc("build the installer image into build/iso (root, Debian 12; --platform DIR takes a real payload)")]
iso *ARGS:
    CLAWDIE_EXTRA_APT="{{iso_apt}}" .ci/bootstrap
    {{venv}}/python iso/build.py {{ARGS}}

# the boot tests' workers: two lanes side by side (each VM runs on one core under TCG), the BIOS
# machine's and the Secure Boot machine's (tests/test_boot.py); CLAWDIE_BOOT_WORKERS=0 runs them
# one after the other in this process (then `-s` shows each boot's serial progress)
boot_workers := env("CLAWDIE_BOOT_WORKERS", "2")

# build the image (cached) and prove the whole journey under QEMU: install from the stick,
# first boot, PLATFORM-READY; also UEFI, a seed missing a field, and the stick left in; the
# figures of every boot end up in build/iso/boot-test/figures.json, the slowest tests are listed
[doc("build the image (cached) and boot it under QEMU: install, first boot, PLATFORM-READY and the other lanes")]
boot-test *ARGS:
    {{just_executable()}} iso
    rm -f build/iso/boot-test/figures.json
    {{venv}}/pytest -m boot -n {{boot_workers}} --dist loadgroup --durations=25 {{ARGS}}

# Snapshots live in tests/__snapshots__/; look at the changed SVGs before committing them.
# accept the wizard's current screens as its snapshots
snapshots-update *ARGS="tests/test_wizard.py":
    {{venv}}/pytest --snapshot-update -k snapshot {{ARGS}}

# put the platform on this running Debian 12 host (never the OS), then run first boot: as root,
# from a filled setup.txt; your own login is checked and left alone (--operator-login NAME)
[doc("put the platform on this running Debian 12 host (never the OS) and run first boot, from a filled setup.txt")]
install SEED *ARGS:
    {{venv}}/clawdie-setup install-platform {{SEED}} {{ARGS}}

# a platform release from a payload folder: its Node modules built from the lock (npm ci), packed
# as build/release/NAME-VERSION.tar; sign it with `minisign -S -m FILE`
[doc("make a platform release (tar with its Node modules) from a payload folder; sign it with minisign")]
release PAYLOAD *ARGS:
    {{venv}}/python iso/release.py {{PAYLOAD}} {{ARGS}}

# lint and type-check only
lint:
    {{venv}}/ruff check installer tests bench iso
    {{venv}}/ruff format --check installer tests bench iso
    {{venv}}/mypy --strict installer tests iso bench

# format the code
fmt:
    {{venv}}/ruff format installer tests bench iso
    {{venv}}/ruff check --fix installer tests bench iso

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

# benchmark: a platform release applied to ready and a failed one rolled back, against a bare
# pg_dump -Fc + pg_restore of the same databases (root; --mb N sizes system_ops, default 100)
[doc("benchmark: a release applied and one rolled back against pg_dump -Fc + pg_restore (root; --mb N)")]
bench-update *ARGS:
    {{venv}}/python bench/update.py {{ARGS}}

# benchmark: backup and restore against `pg_dump -Fc | age` and `age -d | pg_restore` (root, age)
bench-backup *ARGS:
    {{venv}}/python bench/backup.py {{ARGS}}

# benchmark: flash + verify against dd + cmp (and bmaptool copy) onto a loop device (root)
bench-flash *ARGS:
    {{venv}}/python bench/flash_vs_dd.py {{ARGS}}

# benchmark: the installed disk booted under QEMU (TCG without KVM, minutes): its first boot, a
# later boot, and the same disk with our units masked; our service's share of each (root)
[doc("benchmark: the installed disk's first boot, a later boot and a masked boot under QEMU (root, minutes)")]
bench-boot *ARGS:
    {{venv}}/python bench/boot.py {{ARGS}}
