#!/bin/sh
# Start script of the Home Assistant add-on.
#
# The Supervisor writes the add-on's options to /data/options.json; the program reads
# that file itself. With mqtt.host empty it asks the Supervisor for the broker, using the
# SUPERVISOR_TOKEN the container is started with.
#
# Never print /data/options.json or the environment here: they hold the meter's key and
# passwords, and the add-on log is often pasted into forum posts.
#
# --ingress: the live page for Home Assistant's sidebar, on port 8099, answering only the
# Supervisor's ingress proxy.
#
# exec: the program replaces this shell, so the SIGTERM of "stop add-on" reaches it
# directly and it can say "offline" to Home Assistant before it exits.
set -eu
exec /usr/bin/smartmeter run --config /data/options.json --ingress
