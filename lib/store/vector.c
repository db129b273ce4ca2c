/* vector: distances for vector search (vector.h). Each sum is four partial
 * sums added at the end; PostgreSQL's exact scan adds in index order, so the
 * two may differ in the last bits of a double (far inside the 1e-9 the tests
 * hold every engine to), never in which records are nearest but for ties
 * that close. */
#include "store/vector.h"

#include <math.h>
#include <string.h>

#include "store/engine.h"

static const char *const NAMES[] = {[ENG_METRIC_COSINE] = "cosine", [ENG_METRIC_L2] = "l2",
                                    [ENG_METRIC_INNER] = "inner"};

int vec_metric_parse(const char *s)
{
    for (int m = ENG_METRIC_COSINE; s != NULL && m <= ENG_METRIC_INNER; m++)
        if (strcmp(s, NAMES[m]) == 0)
            return m;
    return -1;
}

const char *vec_metric_name(int metric)
{
    return metric >= ENG_METRIC_COSINE && metric <= ENG_METRIC_INNER ? NAMES[metric] : NAMES[ENG_METRIC_COSINE];
}

/* The sum of TERM(i) for i in [0, n), as four partial sums added at the end:
 * one chain of dependent adds would wait on each add's latency, and a scan
 * of many vectors is made of nothing else. */
#define SUM4(n, TERM)                                                    \
    ({                                                                   \
        double s0_ = 0, s1_ = 0, s2_ = 0, s3_ = 0;                       \
        int i_ = 0;                                                      \
        for (; i_ + 4 <= (n); i_ += 4) {                                 \
            s0_ += TERM(i_);                                             \
            s1_ += TERM(i_ + 1);                                         \
            s2_ += TERM(i_ + 2);                                         \
            s3_ += TERM(i_ + 3);                                         \
        }                                                                \
        for (; i_ < (n); i_++)                                           \
            s0_ += TERM(i_);                                             \
        (s0_ + s1_) + (s2_ + s3_);                                       \
    })

static double dot(const double *a, const double *b, int n)
{
#define TERM(i) (a[i] * b[i])
    return SUM4(n, TERM);
#undef TERM
}

double vec_norm(const double *a, int n)
{
    return sqrt(dot(a, a, n));
}

bool vec_score(int metric, const double *a, double anorm, const double *q, double qnorm, int n, double *score)
{
    switch (metric) {
    case ENG_METRIC_L2:
#define TERM(i) ((a[i] - q[i]) * (a[i] - q[i]))
        *score = sqrt(SUM4(n, TERM));
#undef TERM
        return true;
    case ENG_METRIC_INNER:
        *score = -dot(a, q, n);
        return true;
    default:
        if (anorm == 0 || qnorm == 0)
            return false;
        *score = 1 - dot(a, q, n) / (anorm * qnorm);
        return true;
    }
}

/* As dot, of a float vector: each component widened to double first. */
static double dot_f(const float *a, const double *b, int n)
{
#define TERM(i) ((double)a[i] * b[i])
    return SUM4(n, TERM);
#undef TERM
}

/* What widening to float costs: |a_i - af_i| <= 2^-24 |a_i| for a normal
 * float, so |a.q - af.q| <= 2^-24 |a||q| (Cauchy-Schwarz) and
 * ||a - q| - |af - q|| <= |a - af| <= 2^-24 |a|; a component under float's
 * smallest normal (1.2e-38) moves by up to 2^-149, n of them by n 2^-149 |q|.
 * The sums' own rounding (n 2^-53 of the same magnitudes, for both scores)
 * is far below; 2^-22 covers all of it twice over. */
#define SLACK 0x1p-22
#define TINY(n, qnorm) ((double)(n) * 0x1p-149 * ((qnorm) + 1))

bool vec_score_f(int metric, const float *af, double anorm, const double *q, double qnorm, int n, double *score,
                 double *slack)
{
    switch (metric) {
    case ENG_METRIC_L2:
#define TERM(i) (((double)af[i] - q[i]) * ((double)af[i] - q[i]))
        *score = sqrt(SUM4(n, TERM));
#undef TERM
        *slack = SLACK * (anorm + qnorm) + TINY(n, qnorm);
        return true;
    case ENG_METRIC_INNER:
        *score = -dot_f(af, q, n);
        *slack = SLACK * anorm * qnorm + TINY(n, qnorm);
        return true;
    default:
        if (anorm == 0 || qnorm == 0)
            return false;
        *score = 1 - dot_f(af, q, n) / (anorm * qnorm);
        *slack = SLACK + TINY(n, qnorm) / (anorm * qnorm);
        return true;
    }
}
