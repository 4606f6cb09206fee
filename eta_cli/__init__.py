"""The `eta` command line: thin commands over the project's pure functions, imported lazily."""
