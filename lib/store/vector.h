/* vector: the distances vector search ranks by (engine.h, "vector search"):
 * one definition of each metric for every engine and the API above them, so
 * the memory engine's scores and an exact scan's agree to the rounding of a
 * double. Pure functions: no storage, no allocation. It does not search;
 * each engine scans its own store (the memory engine in C, PostgreSQL in SQL
 * or through pgvector's index). */
#ifndef LIB_STORE_VECTOR_H
#define LIB_STORE_VECTOR_H

#include <stdbool.h>

/* "cosine", "l2", "inner" → enum eng_metric (store/engine.h); -1 for anything else. */
int vec_metric_parse(const char *s);
/* Borrowed (static): the metric's name, "cosine" for 0 (a field's default). */
const char *vec_metric_name(int metric);
/* sqrt(a.a). */
double vec_norm(const double *a, int n);
/* The distance of a from q by metric (engine.h: cosine 1 - a.q/(|a||q|),
 * l2 |a - q|, inner -(a.q)); anorm and qnorm are vec_norm of each (only
 * cosine reads them). false when a never matches (cosine of a zero vector). */
bool vec_score(int metric, const double *a, double anorm, const double *q, double qnorm, int n, double *score);

#endif
