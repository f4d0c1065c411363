from cachewise.cli import main

main()
