"""The Lark grammar of the .rw language, shipped inside the package as `engine.grammar`."""
