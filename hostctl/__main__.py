from hostctl.cli.root import main

main()
