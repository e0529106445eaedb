"""The command line: the top floor. It parses, wires and prints; the packages below do the work.

`app` holds the Typer application and the shared options; `pipeline`, `models`, `rollout` and
`advise` register their verbs on it; `main` imports them all and is the console script.
"""
