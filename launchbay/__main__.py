"""`python -m launchbay` is the same as the `launchbay` command."""

from launchbay.cli.main import main

main()
