"""pvctl: the command line, kept apart from the library it drives."""
