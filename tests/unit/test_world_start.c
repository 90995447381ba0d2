/* test_world_start.c — how a process started without a launcher starts MPI (comm/world.h): it knows it was not
 * launched, asks Open MPI for the light singleton start (no daemon, no network transports, a session directory
 * of its own under $TMPDIR that is gone after the finalise, sweeping those of killed processes), keeps a setting the user made, and is a working world of one (a collective completes). Launched ranks are tests/mpi/, where the same
 * settings would cut ranks off from each other: every MPI test there passing says they were not applied. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "comm/world.h"

static const char *const launcher_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_FD", "PMI_SIZE"};

static void launcher_variables_say_launched(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++)
        unsetenv(launcher_vars[i]);
    assert_false(dl_world_launched());
    for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++) {
        setenv(launcher_vars[i], "0", 1);
        if (!dl_world_launched())
            DL_TEST_FAIL("%s is set but dl_world_launched says 0", launcher_vars[i]);
        unsetenv(launcher_vars[i]);
    }
}

/* MPI starts once per process, so one test covers the start: the settings made, the user's kept, the world. */
static void a_plain_process_starts_light_and_keeps_user_settings(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++)
        unsetenv(launcher_vars[i]);
    unsetenv("OMPI_MCA_ess_singleton_isolated");
    unsetenv("OMPI_MCA_pml");
    setenv("OMPI_MCA_btl", "self,vader", 1); /* the user's choice: must survive */
    unsetenv("OMPI_MCA_orte_jobfam_session_dir");
    unsetenv("OMPI_MCA_orte_top_session_dir");
    unsetenv("OMPI_MCA_orte_tmpdir_base");
    char tmp[] = "/tmp/dealer_world_start.XXXXXX";
    assert_non_null(mkdtemp(tmp));
    setenv("TMPDIR", tmp, 1);
    /* What a killed singleton leaves: a directory named for its dead process (swept at this start), beside one
     * whose process lives (this test's parent) and another user's (both kept). */
    char host[256] = "localhost";
    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    assert_true(child > 0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    char dead_dir[512], dead_file[600], live_dir[512], other_dir[512];
    snprintf(dead_dir, sizeof dead_dir, "%s/ompi.%s.%u.singleton-%ld", tmp, host, (unsigned)getuid(), (long)child);
    snprintf(dead_file, sizeof dead_file, "%s/1/f.sm", dead_dir);
    snprintf(live_dir, sizeof live_dir, "%s/ompi.%s.%u.singleton-%ld", tmp, host, (unsigned)getuid(),
             (long)getppid());
    snprintf(other_dir, sizeof other_dir, "%s/ompi.%s.%u.singleton-%ld", tmp, host, (unsigned)getuid() + 1,
             (long)child);
    assert_int_equal(mkdir(dead_dir, 0700), 0);
    char dead_sub[560];
    snprintf(dead_sub, sizeof dead_sub, "%s/1", dead_dir);
    assert_int_equal(mkdir(dead_sub, 0700), 0);
    FILE *f = fopen(dead_file, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(mkdir(live_dir, 0700), 0);
    assert_int_equal(mkdir(other_dir, 0700), 0);
    dl_world world;
    DL_EXPECT_OK(dl_world_init(&world, NULL, NULL, 60.0));
    /* Two singletons side by side must not share a session directory (world.c says what sharing one broke). */
    char want[512];
    snprintf(want, sizeof want, "%s/ompi.", tmp);
    const char *session = getenv("OMPI_MCA_orte_jobfam_session_dir");
    assert_non_null(session);
    assert_memory_equal(session, want, strlen(want));
    snprintf(want, sizeof want, ".singleton-%ld", (long)getpid());
    assert_true(strlen(session) > strlen(want));
    assert_string_equal(session + strlen(session) - strlen(want), want);
    char session_dir[512];
    snprintf(session_dir, sizeof session_dir, "%s", session);
    struct stat st;
    if (stat(session_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        DL_TEST_FAIL("Open MPI did not put its session directory at %s", session_dir);
    if (stat(dead_dir, &st) == 0)
        DL_TEST_FAIL("the dead process's session directory %s was not swept", dead_dir);
    if (stat(live_dir, &st) != 0 || stat(other_dir, &st) != 0)
        DL_TEST_FAIL("a live process's or another user's session directory was swept");
    assert_int_equal(rmdir(live_dir), 0);
    assert_int_equal(rmdir(other_dir), 0);
    assert_string_equal(getenv("OMPI_MCA_ess_singleton_isolated"), "1");
    assert_string_equal(getenv("OMPI_MCA_pml"), "ob1");
    assert_string_equal(getenv("OMPI_MCA_btl"), "self,vader");
    assert_int_equal(world.size, 1);
    assert_int_equal(world.rank, 0);
    double sum[2] = {1.5, -2.0};
    DL_EXPECT_OK(dl_comm_allreduce_sum_f64(&world, sum, 2, "singleton all-reduce"));
    /* a sum over one rank is its own value, bit for bit */
    assert_true(sum[0] == 1.5 && sum[1] == -2.0);
    dl_world_finalize(&world);
    if (stat(session_dir, &st) == 0)
        DL_TEST_FAIL("the session directory %s outlived MPI", session_dir);
    assert_int_equal(rmdir(tmp), 0); /* nothing else was left in $TMPDIR either */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(launcher_variables_say_launched),
        cmocka_unit_test(a_plain_process_starts_light_and_keeps_user_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
