/* vector: distances for vector search (vector.h). Plain sums in index
 * order, as PostgreSQL's sum() over unnest() adds them in the exact SQL scan,
 * so both engines round alike. */
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

static double dot(const double *a, const double *b, int n)
{
    double s = 0;

    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

double vec_norm(const double *a, int n)
{
    return sqrt(dot(a, a, n));
}

bool vec_score(int metric, const double *a, double anorm, const double *q, double qnorm, int n, double *score)
{
    double s = 0;

    switch (metric) {
    case ENG_METRIC_L2:
        for (int i = 0; i < n; i++)
            s += (a[i] - q[i]) * (a[i] - q[i]);
        *score = sqrt(s);
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
