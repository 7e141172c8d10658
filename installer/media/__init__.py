"""Media: block devices, the seed partition and its image, the flasher."""
