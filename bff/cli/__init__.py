"""The command line: `bff serve | check-config | sessions`, the only code that reads
`os.environ`.
"""
