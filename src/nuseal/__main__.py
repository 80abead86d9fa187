"""``python -m nuseal`` runs the CLI."""

from nuseal.cli.app import main

main()
