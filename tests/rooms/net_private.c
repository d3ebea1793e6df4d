/* SPDX-License-Identifier: MIT */
/*
 * Must not compile: code outside daemon/net/ including its private header. The
 * rooms_net_private test builds this and passes only on net_int.h's own refusal.
 */
#include "net_int.h"

int rooms_probe_net(void);
int rooms_probe_net(void)
{
    return 0;
}
