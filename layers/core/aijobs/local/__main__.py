from aijobs.local.stack import main

main()
