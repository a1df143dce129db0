"""Running the gateway as an application (layer 5): systemd notify, status, banner, reload,
timing, signals; the library side of the commands, so each command parses options and calls one
function here or in :mod:`csi_edge.service`."""
