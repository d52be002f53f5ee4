from attune.dist import cli

cli()
