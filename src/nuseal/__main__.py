"""``python -m nuseal`` runs the CLI."""

from nuseal.cli.entry import main

main()
