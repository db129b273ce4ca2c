/* vector: the distances vector search ranks by (engine.h, "vector search"):
 * one definition of each metric for every engine and the API above them, so
 * the memory engine's scores and PostgreSQL's agree to the last bits of a
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

/* For scans that read a float copy of each vector (half the bytes) and score
 * exactly only what may make the answer: vec_score of a's float copy af
 * (anorm still the double vector's norm) into *score, and *slack, a bound
 * on how far that is from vec_score of a itself (each component rounded to
 * float moves by at most 2^-24 of itself; the bound is twice what that and
 * the sums' rounding allow). false as vec_score. */
bool vec_score_f(int metric, const float *af, double anorm, const double *q, double qnorm, int n, double *score,
                 double *slack);

#endif
