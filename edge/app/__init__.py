"""Library side of the commands (layer 5): the pieces the CLI used to hold itself, so each
command only parses options and calls one function here or in :mod:`csi_edge.service`."""
