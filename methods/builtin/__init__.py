"""The built-in W2S methods, one module each; ``methods.builtin_names`` maps their names to their
modules, and ``methods.registry`` imports a module when its method is first used in the trusted
process (never where a plan says ``jail: {builtins: jail}``: then only the jail imports them)."""
