"""`python -m launchbay` is the same as the `launchbay` command."""

from launchbay.cli import main

main()
