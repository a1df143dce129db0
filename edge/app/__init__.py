"""Running the gateway as an application: systemd notify, status, banner, reload, timing."""
