/* Unit tests for lib/fdpass: a descriptor sent over a SOCK_SEQPACKET pair
 * arrives as a working descriptor of the same open file (close-on-exec),
 * counts outside 1..FDPASS_MAX are refused, and a closed peer is told apart. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "unit.h"

#include "fleet/fdpass.h"

static int setup(void **state)
{
    static int sv[2];

    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0)
        return -1;
    *state = sv;
    return 0;
}

static int teardown(void **state)
{
    int *sv = *state;

    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    return 0;
}

static void test_received_pipe_end_writes_into_the_original_pipe(void **state)
{
    int *sv = *state;
    int p[2], got[4] = {-1, -1, -1, -1}, n = -1;
    char buf[16] = "";

    /* non-blocking: a leaked write end makes the EOF check fail, not hang */
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    assert_int_equal(fdpass_send(sv[0], &p[1], 1), 0);
    close(p[1]); /* the sender's copy is gone: only the passed one remains */

    assert_int_equal(fdpass_recv(sv[1], got, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_true(got[0] >= 0);
    assert_int_not_equal(got[0], p[0]);
    assert_true(fcntl(got[0], F_GETFD) & FD_CLOEXEC);

    assert_int_equal(write(got[0], "hello", 5), 5);
    close(got[0]);
    assert_int_equal(read(p[0], buf, sizeof buf), 5);
    assert_memory_equal(buf, "hello", 5);
    /* every write end closed: the reader sees EOF, so no copy leaked */
    assert_int_equal(read(p[0], buf, sizeof buf), 0);
    close(p[0]);
}

static void test_several_descriptors_arrive_in_order(void **state)
{
    int *sv = *state;
    int p[3][2], w[3], got[3], n = 0;
    char c;

    for (int i = 0; i < 3; i++) {
        assert_int_equal(pipe(p[i]), 0);
        w[i] = p[i][1];
    }
    assert_int_equal(fdpass_send(sv[0], w, 3), 0);
    assert_int_equal(fdpass_recv(sv[1], got, 3, &n), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        char tag = (char)('a' + i);
        assert_int_equal(write(got[i], &tag, 1), 1);
        assert_int_equal(read(p[i][0], &c, 1), 1);
        assert_int_equal(c, tag);
        close(got[i]);
        close(p[i][0]);
        close(p[i][1]);
    }
}

static void test_descriptors_beyond_max_are_closed_not_leaked(void **state)
{
    int *sv = *state;
    int p[2], w[2], got[1], n = 0;
    char c;

    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    w[0] = p[1];
    w[1] = p[1];
    assert_int_equal(fdpass_send(sv[0], w, 2), 0);
    close(p[1]);
    assert_int_equal(fdpass_recv(sv[1], got, 1, &n), 0);
    assert_int_equal(n, 1);
    close(got[0]);
    /* a second copy kept open anywhere would make this EAGAIN, not EOF */
    assert_int_equal(read(p[0], &c, 1), 0);
    close(p[0]);
}

static void test_send_refuses_zero_negative_and_too_many(void **state)
{
    int *sv = *state;
    int fds[FDPASS_MAX + 1];

    for (int i = 0; i <= FDPASS_MAX; i++)
        fds[i] = STDIN_FILENO;
    assert_int_equal(fdpass_send(sv[0], fds, 0), ERR_INVAL);
    assert_int_equal(fdpass_send(sv[0], fds, -1), ERR_INVAL);
    assert_int_equal(fdpass_send(sv[0], fds, FDPASS_MAX + 1), ERR_INVAL);
    /* nothing was sent: the peer sees the close, not a message */
    close(sv[0]);
    sv[0] = -1;
    int got[1], n = 7;
    assert_int_equal(fdpass_recv(sv[1], got, 1, &n), ERR_NOTFOUND);
    assert_int_equal(n, 0);
}

static void test_send_of_exactly_max_descriptors_succeeds(void **state)
{
    int *sv = *state;
    int fds[FDPASS_MAX], got[FDPASS_MAX], n = 0;

    for (int i = 0; i < FDPASS_MAX; i++)
        fds[i] = STDIN_FILENO;
    assert_int_equal(fdpass_send(sv[0], fds, FDPASS_MAX), 0);
    assert_int_equal(fdpass_recv(sv[1], got, FDPASS_MAX, &n), 0);
    assert_int_equal(n, FDPASS_MAX);
    for (int i = 0; i < n; i++)
        close(got[i]);
}

static void test_recv_after_peer_closed_is_notfound(void **state)
{
    int *sv = *state;
    int got[2], n = 5;

    close(sv[0]);
    sv[0] = -1;
    assert_int_equal(fdpass_recv(sv[1], got, 2, &n), ERR_NOTFOUND);
    assert_int_equal(n, 0);
}

static void test_send_to_closed_peer_is_io_error(void **state)
{
    int *sv = *state;
    int fd = STDIN_FILENO;

    close(sv[1]);
    sv[1] = -1;
    assert_int_equal(fdpass_send(sv[0], &fd, 1), ERR_IO); /* EPIPE, without SIGPIPE */
}

static void test_recv_on_bad_socket_is_io_error(void **state)
{
    int got[1], n;
    int fd = open("/dev/null", O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(fdpass_recv(fd, got, 1, &n), ERR_IO);
    close(fd);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_received_pipe_end_writes_into_the_original_pipe),
        T(test_several_descriptors_arrive_in_order),
        T(test_descriptors_beyond_max_are_closed_not_leaked),
        T(test_send_refuses_zero_negative_and_too_many),
        T(test_send_of_exactly_max_descriptors_succeeds),
        T(test_recv_after_peer_closed_is_notfound),
        T(test_send_to_closed_peer_is_io_error),
        cmocka_unit_test(test_recv_on_bad_socket_is_io_error),
    };
    return cmocka_run_group_tests_name("fdpass", tests, NULL, NULL);
}
