"""The live installer's disk install (`clawdie-setup install`, DESIGN §6 "Fresh machine").

targets.py  which disk to install to (pure choice over block devices), and the existing-install
            guard
layout.py   partition table, file systems, fstab
system.py   copy the live system, machine id, install record, mounts, boot loader (chroot)
console.py  progress lines, markers and timed questions on the console
flow.py     the ordered run, its receipt and its end (reboot or power off)
"""
