"""The systemd unit, config and environment file that ``csi-edge service install`` writes.

One template: ``scripts/csi-edge.service`` is this unit rendered for ``/opt/csi-edge/.venv``
(a test keeps them equal).
"""

from __future__ import annotations

UNIT = """\
# systemd unit for the csi-edge gateway (written by `csi-edge service install`).
#   sudo systemctl daemon-reload && sudo systemctl enable --now csi-edge
#   systemctl status csi-edge     # STATUS= line: nodes online, MQTT, frames/s
#   sudo systemctl reload csi-edge  # re-reads {config} (SIGHUP)
[Unit]
Description=csi-edge WiFi-CSI gateway
Wants=network-online.target
After=network-online.target

[Service]
# READY=1 once sources are bound and models loaded; WATCHDOG=1 only while reports keep coming,
# so a frozen gateway is restarted instead of showing its last values as current
Type=notify
NotifyAccess=main
WatchdogSec=30
TimeoutStartSec=120
ExecStart={exe} run --config {config} --quiet
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=20
# secrets (CSI_EDGE_MQTT_PASSWORD=...) live here, root-only, never in gateway.toml
EnvironmentFile=-{env}
# a dedicated unprivileged user, in dialout for USB serial nodes
DynamicUser=yes
SupplementaryGroups=dialout
# /var/lib/csi-edge: baselines, the HTTP token, reports; $STATE_DIRECTORY tells csi-edge
StateDirectory=csi-edge
WorkingDirectory=%S/csi-edge
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
NoNewPrivileges=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
LockPersonality=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
# gateway + estimator process: ~145 MB RSS at 16 nodes x 50 Hz, +0.9 MB a node
# (docs/gateway-operations.md, Memory); 300M leaves room for ~128 nodes
MemoryMax=300M
LimitNOFILE=8192

[Install]
WantedBy=multi-user.target
"""

CONFIG = """\
# csi-edge gateway configuration (csi-edge run --config FILE; `systemctl reload csi-edge` re-reads it).
# Every key has a default: `csi-edge run --print-config` prints them all.

[ingest]
# where nodes send ADR-018 UDP (their target IP must be this machine). 0.0.0.0 accepts any sender.
udp = ["0.0.0.0:5005"]
# [[ingest.serial]]
# port = "/dev/ttyUSB0"
# baud = 921600

[sinks]
console = false
# reports, one JSON line each; rotated at 50 MB or 24 h, 7 kept, gzipped
jsonl = "/var/lib/csi-edge/reports.jsonl"
# live view, /health, /metrics. Any address other than 127.0.0.1 requires the token
# (sudo CSI_EDGE_STATE_DIR=/var/lib/csi-edge csi-edge status --token prints it)
http = "127.0.0.1:8080"
# raw capture ring of everything received (rotating pcap), for replay when something went wrong
# capture = "/var/lib/csi-edge/capture"

[sinks.mqtt]
# host = "homeassistant.local"
# username = "csi-edge"   # the password goes into {env} as CSI_EDGE_MQTT_PASSWORD=...
# password_file = "mqtt-password"   # or: LoadCredential=mqtt-password:/etc/csi-edge/mqtt-password
# tls = true               # port 8883; ca_file = "/etc/csi-edge/ca.pem" (docs/home-assistant.md)
# topics are csi-edge/<gateway_id>/...: set gateway_id (top of this file) when several
# gateways share a broker and you want names of your own; default: the host name, kept in
# /var/lib/csi-edge/gateway_id

# Names and rooms of the nodes (the console, the live page, /health, JSONL, and Home Assistant's
# device names and areas). A board is matched by its MAC (through the results file that
# `csi-edge provision --inventory` writes), its node id, or its address; a named board keeps its
# key, room baseline and Home Assistant devices when its IP changes. Unnamed nodes still work,
# with an automatic name; the log says once how to name each.
# [inventory]
# results = ["fleet.results.json"]  # relative to this file; each board's zone is its name and area
# known_only = false                # true: refuse frames of nodes not named here or there
#
# [nodes.bedroom]
# name = "Bedroom"
# area = "Bedroom"                  # Home Assistant's suggested area
# node_id = 3                       # or mac = "f4:12:fa:00:00:03", or address = "192.168.1.23"
"""

ENV = """\
# Secrets for the csi-edge service (root-only; read by systemd, passed to the gateway).
# CSI_EDGE_MQTT_PASSWORD=
"""


def render_unit(exe: str, config: str, env: str) -> str:
    return UNIT.format(exe=exe, config=config, env=env)
