"""Every path the installer touches, hung off a target root (never a literal /etc in logic)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RELEASE_KEY_NAME = "release.pub"  # in /etc/clawdie: the publisher's public key
SERVICE_NAME = "clawdie"


def in_root(root: Path, path: str) -> Path:
    """`path`, absolute as it is on the box (`/etc/hostname`), inside `root`: the one way a
    path of the box is joined to a target root."""
    return root / path.lstrip("/")


@dataclass(frozen=True)
class TargetPaths:
    """Paths inside the target system rooted at `root` (`/` on the appliance, tmp in tests)."""

    root: Path

    def _at(self, path: str) -> Path:
        return in_root(self.root, path)

    @property
    def is_live_system(self) -> bool:
        return self.root.resolve() == Path("/")

    # identity
    @property
    def hostname(self) -> Path:
        return self._at("/etc/hostname")

    @property
    def hosts(self) -> Path:
        return self._at("/etc/hosts")

    @property
    def timezone(self) -> Path:
        return self._at("/etc/timezone")

    @property
    def localtime(self) -> Path:
        return self._at("/etc/localtime")

    @property
    def default_locale(self) -> Path:
        return self._at("/etc/default/locale")

    @property
    def locale_gen(self) -> Path:
        return self._at("/etc/locale.gen")

    @property
    def default_keyboard(self) -> Path:
        return self._at("/etc/default/keyboard")

    # network (the image's own 20-clawdie-wired.network gives wired links DHCP)
    @property
    def networkd_dir(self) -> Path:
        return self._at("/etc/systemd/network")

    @property
    def image_wired_network(self) -> Path:
        """The image's default for wired links: DHCP (iso/overlay)."""
        return self.networkd_dir / "20-clawdie-wired.network"

    @property
    def wired_network(self) -> Path:
        """The seed's wired configuration; sorts first, so networkd takes it over the image's."""
        return self.networkd_dir / "10-clawdie-wired.network"

    @property
    def wifi_network(self) -> Path:
        return self.networkd_dir / "25-clawdie-wifi.network"

    @property
    def wifi_supplicant_conf(self) -> Path:
        """The Wi-Fi network and its PSK (root, 0600): never the password itself."""
        return self._at(f"/etc/wpa_supplicant/{SERVICE_NAME}-wifi.conf")

    @property
    def wifi_unit(self) -> Path:
        """The supplicant's template unit, one instance per Wi-Fi interface."""
        return self._at(f"/etc/systemd/system/{SERVICE_NAME}-wifi@.service")

    @property
    def wifi_udev_rule(self) -> Path:
        return self._at(f"/etc/udev/rules.d/90-{SERVICE_NAME}-wifi.rules")

    @property
    def wifi_regdom(self) -> Path:
        """The regulatory domain for the kernel's cfg80211, set before any supplicant runs."""
        return self._at(f"/etc/modprobe.d/{SERVICE_NAME}-wifi.conf")

    @property
    def sys_class_net(self) -> Path:
        """The running kernel's network interfaces (only read on the live system)."""
        return self._at("/sys/class/net")

    @property
    def timesync_synchronized(self) -> Path:
        """Made by systemd-timesyncd once NTP has set the clock (timedatectl: NTPSynchronized)."""
        return self._at("/run/systemd/timesync/synchronized")

    # the installed system (written by the disk installer)
    @property
    def fstab(self) -> Path:
        return self._at("/etc/fstab")

    @property
    def machine_id(self) -> Path:
        return self._at("/etc/machine-id")

    @property
    def esp_dir(self) -> Path:
        return self._at("/boot/efi")

    @property
    def efi_firmware(self) -> Path:
        """/sys/firmware/efi: present when UEFI firmware started the running kernel."""
        return self._at("/sys/firmware/efi")

    @property
    def boot_loader_status(self) -> Path:
        """What apt's hook last did to the ESP's signed boot loaders (install/esp_renewal.py)."""
        return self.setup_state_dir / "boot-loader.txt"

    @property
    def boot_loader_issue(self) -> Path:
        """The login screen's notice while the ESP's boot loaders could not be renewed."""
        return self._at(f"/etc/issue.d/{SERVICE_NAME}-boot-loader.issue")

    @property
    def grub_cfg(self) -> Path:
        return self._at("/boot/grub/grub.cfg")

    @property
    def grub_defaults(self) -> Path:
        return self._at("/etc/default/grub")

    # accounts
    @property
    def passwd(self) -> Path:
        return self._at("/etc/passwd")

    @property
    def shadow(self) -> Path:
        return self._at("/etc/shadow")

    @property
    def ssh_dir(self) -> Path:
        """/etc/ssh: the host keys (their public halves are fingerprinted for the receipt)."""
        return self._at("/etc/ssh")

    @property
    def sshd_dropin(self) -> Path:
        return self._at(f"/etc/ssh/sshd_config.d/{SERVICE_NAME}.conf")

    # platform
    @property
    def config_dir(self) -> Path:
        return self._at(f"/etc/{SERVICE_NAME}")

    @property
    def system_env(self) -> Path:
        return self.config_dir / "system.env"

    @property
    def resolved_json(self) -> Path:
        return self.config_dir / "setup.resolved.json"

    @property
    def image_version(self) -> Path:
        """The image's version, written by the image build (absent in a dev tree)."""
        return self.config_dir / "image-version"

    @property
    def release_key(self) -> Path:
        """The publisher's minisign public key, written by the image build or install-platform:
        the only key a platform release is taken with (DESIGN §9)."""
        return self.config_dir / RELEASE_KEY_NAME

    @property
    def service_home(self) -> Path:
        """/var/lib/clawdie: the service account's home and the platform's data. The account
        can write here, so it holds nothing root relies on."""
        return self._at(f"/var/lib/{SERVICE_NAME}")

    @property
    def setup_state_dir(self) -> Path:
        """/var/lib/clawdie-setup (root, 0700): root's own first-boot state: stamps, the seed
        copy, the console answers, the account ledger, the summary and the install record."""
        return self._at(f"/var/lib/{SERVICE_NAME}-setup")

    @property
    def platform_unit_dropin(self) -> Path:
        """Runs the platform unit as the service account (SERVICE_ACCOUNT may rename it)."""
        return self._at(f"/etc/systemd/system/{SERVICE_NAME}.service.d/10-account.conf")

    @property
    def seed_dir(self) -> Path:
        """The seed copy and the console answers: deleted once first boot is complete."""
        return self.setup_state_dir / "seed"

    @property
    def seed_copy(self) -> Path:
        return self.seed_dir / "setup.txt"

    @property
    def wizard_answers(self) -> Path:
        return self.seed_dir / "wizard-answers.txt"

    @property
    def stored_backup(self) -> Path:
        """A restore seed's backup, carried with the seed copy (INSTALL_MODE=restore)."""
        return self.seed_dir / "backup.age"

    @property
    def stored_backup_name(self) -> Path:
        """The owner's name of that backup (the receipt says it; the copy's name is fixed)."""
        return self.seed_dir / "backup-name"

    @property
    def accounts_ledger(self) -> Path:
        """The accounts first boot created (written before it creates one): an account that
        exists but is not listed here is someone else's and is never taken over."""
        return self.setup_state_dir / "accounts-created"

    @property
    def install_record(self) -> Path:
        """What the disk installer did (when, which disk, which image); never a secret."""
        return self.setup_state_dir / "installed.txt"

    @property
    def firstboot_time(self) -> Path:
        """First boot's time so far over all its runs (a resumed first boot counts them all)."""
        return self.setup_state_dir / "firstboot-time.json"

    @property
    def install_complete(self) -> Path:
        """Written last by the disk installer (after the boot loader and a sync): without it, a
        disk holding our partitions is an install that was cut short (install/targets.py)."""
        return self.setup_state_dir / "install-complete.txt"

    @property
    def stamps_dir(self) -> Path:
        return self.setup_state_dir / "firstboot"

    @property
    def complete_stamp(self) -> Path:
        """First boot is done: the units' conditions test this path (see iso/overlay)."""
        return self.stamps_dir / "complete.done"

    @property
    def adopt_dir(self) -> Path:
        """An adopt run in progress: its plan and step stamps (removed when it is done)."""
        return self.setup_state_dir / "adopt"

    @property
    def adopt_plan(self) -> Path:
        return self.adopt_dir / "plan.json"

    @property
    def adopt_stamps_dir(self) -> Path:
        return self.adopt_dir / "steps"

    @property
    def adopt_summary(self) -> Path:
        """What the last adopt run applied, kept and refused."""
        return self.setup_state_dir / "adopt-summary.txt"

    @property
    def adopt_code_hash(self) -> Path:
        """The adopt code as a slow hash (root, 0600): never the code itself (DESIGN §10)."""
        return self.setup_state_dir / "adopt-code.hash"

    @property
    def fingerprint_record(self) -> Path:
        """The installation's fingerprint kept as a record (root, 0600): a restored box keeps the
        old box's, whatever its own machine id (installer/fingerprint.py prefers it)."""
        return self.setup_state_dir / "installation-id"

    @property
    def backup_work_dir(self) -> Path:
        """A restore's scratch space (root, 0700), removed when the run ends."""
        return self.setup_state_dir / "backup-work"

    @property
    def restore_progress_dir(self) -> Path:
        """A restore's progress (root, 0700): which backup it is of, each database restored,
        its end; a restore cut part way is taken up from it (installer/backup/restore.py)."""
        return self.setup_state_dir / "restore"

    @property
    def restore_summary(self) -> Path:
        """What the last restore put back (never a secret)."""
        return self.setup_state_dir / "restore-summary.txt"

    @property
    def platform_manifest(self) -> Path:
        """The platform payload's platform.toml (name, version, start), from the image."""
        return self._at(f"/opt/{SERVICE_NAME}/platform/platform.toml")

    @property
    def tls_key(self) -> Path:
        """The TLS pair's private half (Debian's snakeoil, made on the machine at install)."""
        return self._at("/etc/ssl/private/ssl-cert-snakeoil.key")

    @property
    def tls_cert(self) -> Path:
        return self._at("/etc/ssl/certs/ssl-cert-snakeoil.pem")

    @property
    def runtime_dir(self) -> Path:
        """/run/clawdie-setup (root, 0700): state that a reboot clears (tmpfs)."""
        return self._at(f"/run/{SERVICE_NAME}-setup")

    @property
    def adopt_failures(self) -> Path:
        """How many wrong adopt codes this boot has seen (cleared by a reboot)."""
        return self.runtime_dir / "adopt-failures"

    @property
    def summary(self) -> Path:
        return self.setup_state_dir / "install-summary.txt"

    @property
    def bundles_dir(self) -> Path:
        """Where a failure's log bundle is always kept on the disk (root only, like its parent)."""
        return self.setup_state_dir

    @property
    def units_reload_marker(self) -> Path:
        """Present while a unit file first boot changed waits for `systemctl daemon-reload`."""
        return self.stamps_dir / "units-reload.pending"

    @property
    def telegram_queue_dir(self) -> Path:
        """Telegram messages that could not be sent yet (no network), one JSON file each, 0600;
        never the bot token (that stays in system.env)."""
        return self.setup_state_dir / "telegram-queue"

    @property
    def telegram_given_up_dir(self) -> Path:
        """Queued messages the retry timer gave up on after a day, kept to say so (root, 0700)."""
        return self.setup_state_dir / "telegram-given-up"

    @property
    def issue_file(self) -> Path:
        return self._at(f"/etc/issue.d/{SERVICE_NAME}.issue")

    @property
    def adopt_refused_issue(self) -> Path:
        """A refused adopt on the login screen until the next boot (/run is memory: agetty reads
        /run/issue.d/ too, and the next boot starts without it)."""
        return self._at(f"/run/issue.d/{SERVICE_NAME}-adopt.issue")

    def written_dirs(self) -> list[Path]:
        """Every directory first boot writes files into (to sweep temp files a power cut left)."""
        return [
            self._at("/etc"),
            self._at("/etc/default"),
            self._at("/etc/issue.d"),
            self.sshd_dropin.parent,
            self.config_dir,
            self.setup_state_dir,
            self.seed_dir,
            self.stamps_dir,
            self.adopt_dir,
            self.adopt_stamps_dir,
            self.restore_progress_dir,
        ]

    def home_path(self, home: str) -> Path:
        """A home directory from /etc/passwd, inside the target."""
        return self._at(home)
