from aijobs.cli.main import cli

cli(prog_name="aijobs")
