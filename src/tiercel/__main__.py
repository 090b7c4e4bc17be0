from tiercel.cli.main import main

main()
