"""What tests share: seeds, sentinel secrets, the runs of the product's commands, and the
boxes they run on. Test modules import from here (or take a fixture from conftest.py), never
from another test module."""
