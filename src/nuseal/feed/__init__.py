"""Holds only ``versioning`` until it moves to ``nuseal.versioning``; the V3 client is ``nuseal.client``."""
