"""The ``nuseal admin`` command group object, shared by the modules that add sub-groups to it.

:mod:`nuseal.cli.admin` registers the group's options and the account, key, owner and package commands;
:mod:`nuseal.cli.admin_governance` adds ``cert`` and ``signer``. Both attach to this one object, so neither
imports the other's commands.
"""

from __future__ import annotations

from nuseal.cli.base import group

admin_app = group("admin", "Administer a nuseal feed (operators).")
