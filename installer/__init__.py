"""Clawdie appliance installer: seed reading, first boot, wizard, image tools."""

__version__ = "0.1.0"
