"""One module per ``csi-edge`` subcommand; each defines ``command``."""
