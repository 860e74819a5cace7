"""`python -m dialer.cli`: the same as the `carecall` command."""

from dialer.cli import main

main()
