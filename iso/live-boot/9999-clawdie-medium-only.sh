# Clawdie: live-boot looks for its medium only on ISO 9660 volumes (the stick and the CD are).
#
# Sourced by live-boot after its own helpers (9990-*), in the initramfs. Stock live-boot mounts
# every file system it can while it waits for the medium, internal disks included; mounting an
# ext4 that was not cleanly unmounted replays its journal even read-only, so a stick left in
# would change the installed disk before the installer even starts. This narrows the search.
is_supported_fs ()
{
	[ "${1}" = "iso9660" ]
}
