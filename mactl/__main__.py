from mactl.cli import main

main()
