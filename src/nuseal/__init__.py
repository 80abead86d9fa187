"""nuseal: NuGet package signing and verification, byte-compatible with NuGet.

Start at ``nuseal.verify.engine.verify_package`` to verify, ``nuseal.sign`` to sign.
"""

__version__ = "0.1.0"
