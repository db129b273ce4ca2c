/* test_vector: lib/store/vector.h — the metrics' names both ways and each
 * distance on vectors whose answer is known by hand, cosine refusing a zero
 * vector rather than dividing by it. */
#include "unit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/engine.h"
#include "store/vector.h"

static void test_metric_names_round_trip_and_unknown_ones_are_refused(void **state)
{
    (void)state;
    for (int m = ENG_METRIC_COSINE; m <= ENG_METRIC_INNER; m++)
        assert_int_equal(vec_metric_parse(vec_metric_name(m)), m);
    assert_string_equal(vec_metric_name(0), "cosine");
    assert_int_equal(vec_metric_parse("dot"), -1);
    assert_int_equal(vec_metric_parse("Cosine"), -1);
    assert_int_equal(vec_metric_parse(""), -1);
    assert_int_equal(vec_metric_parse(NULL), -1);
}

static double score(int metric, const double *a, const double *q, int n)
{
    double s = NAN;

    assert_true(vec_score(metric, a, vec_norm(a, n), q, vec_norm(q, n), n, &s));
    return s;
}

static void test_each_distance_on_vectors_known_by_hand(void **state)
{
    const double x[2] = {1, 0}, y[2] = {0, 1}, x2[2] = {2, 0}, mx[2] = {-3, 0};
    const double o[2] = {0, 0}, p[2] = {3, 4}, a[2] = {1, 2}, b[2] = {3, 4};

    (void)state;
    assert_true(score(ENG_METRIC_COSINE, x, y, 2) == 1.0);        /* orthogonal */
    assert_true(score(ENG_METRIC_COSINE, x2, x, 2) == 0.0);       /* same direction, any length */
    assert_true(score(ENG_METRIC_COSINE, mx, x, 2) == 2.0);       /* opposite */
    assert_true(score(ENG_METRIC_L2, o, p, 2) == 5.0);
    assert_true(score(ENG_METRIC_L2, p, p, 2) == 0.0);
    assert_true(score(ENG_METRIC_INNER, a, b, 2) == -11.0);       /* -(3 + 8): larger products nearer */
    assert_true(vec_norm(p, 2) == 5.0);
}

static void test_cosine_of_a_zero_vector_never_matches_while_l2_and_inner_score_it(void **state)
{
    const double z[3] = {0, 0, 0}, q[3] = {1, 2, 3};
    double s = 42;

    (void)state;
    assert_false(vec_score(ENG_METRIC_COSINE, z, 0, q, vec_norm(q, 3), 3, &s));
    assert_true(score(ENG_METRIC_L2, z, q, 3) == sqrt(14.0));
    assert_true(score(ENG_METRIC_INNER, z, q, 3) == 0.0);
}

/* The float copy's score stays within its slack of the exact one, for every
 * metric, on components of every size a double may take (floats round, lose
 * the tiny ones to zero or subnormals, and overflow none here). */
static void test_a_float_copy_scores_within_its_slack_of_the_doubles(void **state)
{
    static const double scales[] = {1e-300, 1e-40, 1e-3, 1, 1e6, 1e30};
    double a[96], q[96];
    float af[96];
    unsigned seed = 42;

    (void)state;
    for (size_t sc = 0; sc < sizeof scales / sizeof scales[0]; sc++) {
        for (int t = 0; t < 200; t++) {
            for (int i = 0; i < 96; i++) {
                a[i] = ((double)rand_r(&seed) / RAND_MAX * 2 - 1) * scales[sc];
                q[i] = (double)rand_r(&seed) / RAND_MAX * 2 - 1;
                af[i] = (float)a[i];
            }
            for (int m = ENG_METRIC_COSINE; m <= ENG_METRIC_INNER; m++) {
                double exact, approx, slack, an = vec_norm(a, 96), qn = vec_norm(q, 96);
                bool ok = vec_score(m, a, an, q, qn, 96, &exact);
                assert_int_equal(ok, vec_score_f(m, af, an, q, qn, 96, &approx, &slack));
                if (ok && !(fabs(exact - approx) <= slack))
                    fail_msg("metric %d, scale %g: exact %.17g, from floats %.17g, slack %g", m, scales[sc], exact,
                             approx, slack);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric_names_round_trip_and_unknown_ones_are_refused),
        cmocka_unit_test(test_each_distance_on_vectors_known_by_hand),
        cmocka_unit_test(test_cosine_of_a_zero_vector_never_matches_while_l2_and_inner_score_it),
        cmocka_unit_test(test_a_float_copy_scores_within_its_slack_of_the_doubles),
    };
    return cmocka_run_group_tests_name("vector", tests, NULL, NULL);
}
