/* SPDX-License-Identifier: MIT */
/*
 * service: the daemon as a systemd service (sd_notify, libsystemd). READY=1 once it
 * serves, a STATUS= line every few seconds (clients, events/s, series), WATCHDOG=1
 * from a loop timer at half of WATCHDOG_USEC, so a stalled loop stops the pings and
 * systemd restarts it, RELOADING=1 around SIGHUP and STOPPING=1 on the way out.
 * Started by hand (no NOTIFY_SOCKET) every call is a no-op.
 */
#ifndef METRICSD_SERVICE_H
#define METRICSD_SERVICE_H

#include "net.h"
#include "server.h"

/* Start the STATUS and watchdog timers on srv->loop and send READY=1. */
void service_start(server *srv, listener *l);
/* SIGHUP: RELOADING=1 before the file is read, READY=1 after. */
void service_reloading(void);
void service_reloaded(void);
/* STOPPING=1 and stop the timers (their handles closed; run the loop after). */
void service_stop(void);

#endif
