/* SPDX-License-Identifier: MIT */
/*
 * corpus: the fuzzer's seed corpus, written by `reliab corpus DIR` (see corpus.c).
 */
#ifndef METRICSD_RELIAB_CORPUS_H
#define METRICSD_RELIAB_CORPUS_H

/* Write the seed files into dir. Returns 0 or 1. */
int corpus_write(const char *dir);

#endif
