"""`python -m winnow` == the `winnow` command."""

from winnow.cli import main

main()
