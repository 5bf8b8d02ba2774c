from jobqd.cli import main

main()
