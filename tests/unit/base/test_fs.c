/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: base/fs.c, the durable-write primitives shared by the store and the client's OCI
 * layout end: an atomic replace leaves the new bytes (mode 0644) and no temporary file, a
 * failed one leaves the old file and no temporary file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/fs.h"

#include <berth/errors.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int setup(void **state)
{
    char *dir = strdup("/tmp/berth-test-fs-XXXXXX");
    if (!dir || !mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    berth__fs_rmtree(*state);
    free(*state);
    return 0;
}

static size_t entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(d);
    return n;
}

static void check_file(const char *path, const char *want)
{
    berth_buf b = BERTH_BUF_INIT;
    struct stat st;
    assert_int_equal(berth__fs_read_file(&b, path, 1024), 0);
    assert_string_equal(berth_buf_cstr(&b), want);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    berth_buf_dispose(&b);
}

static void test_fs__write_atomic_replaces(void **state)
{
    const char *root = *state;
    berth_buf tmp = BERTH_BUF_INIT, dst = BERTH_BUF_INIT;

    assert_int_equal(berth_buf_printf(&tmp, "%s/tmp", root), 0);
    assert_int_equal(berth_buf_printf(&dst, "%s/a/b/file", root), 0);
    assert_int_equal(berth__fs_mkdirs(tmp.ptr), 0);
    assert_int_equal(berth__fs_mkdirs(dst.ptr), 0); /* a directory in the way, for now */
    assert_int_equal(berth__fs_rmtree(dst.ptr), 0);
    assert_int_equal(berth__fs_write_atomic(tmp.ptr, dst.ptr, "one", 3, true), 0);
    check_file(dst.ptr, "one");
    assert_int_equal(berth__fs_write_atomic(tmp.ptr, dst.ptr, "two!", 4, false), 0);
    check_file(dst.ptr, "two!");
    assert_int_equal(entries(tmp.ptr), 0);
    berth_buf_dispose(&tmp);
    berth_buf_dispose(&dst);
}

static void test_fs__failed_write_leaves_old_file_and_no_debris(void **state)
{
    const char *root = *state;
    berth_buf dst = BERTH_BUF_INIT, bad = BERTH_BUF_INIT;

    assert_int_equal(berth_buf_printf(&dst, "%s/file", root), 0);
    assert_int_equal(berth__fs_write_atomic(root, dst.ptr, "old", 3, true), 0);
    /* the rename fails: its target's directory does not exist */
    assert_int_equal(berth_buf_printf(&bad, "%s/missing/file", root), 0);
    assert_int_equal(berth__fs_write_atomic(root, bad.ptr, "new", 3, true), BERTH_EIO);
    check_file(dst.ptr, "old");
    assert_int_equal(entries(root), 1);
    /* no staging directory: nothing created */
    assert_int_equal(berth__fs_write_atomic(bad.ptr, dst.ptr, "new", 3, true), BERTH_EIO);
    check_file(dst.ptr, "old");
    assert_int_equal(entries(root), 1);
    berth_buf_dispose(&dst);
    berth_buf_dispose(&bad);
}

static void test_fs__tmpfile_and_commit(void **state)
{
    const char *root = *state;
    berth_buf tmp = BERTH_BUF_INIT, dst = BERTH_BUF_INIT, bad = BERTH_BUF_INIT;
    int fd = -1;

    assert_int_equal(berth_buf_printf(&dst, "%s/blob", root), 0);
    assert_int_equal(berth_buf_puts(&tmp, "kept:"), 0);
    assert_int_equal(berth__fs_tmpfile(&fd, &tmp, root, ".tmp-blob-"), 0);
    assert_true(fd >= 0);
    /* the path is appended, hidden, and the file is not readable by others until committed */
    assert_true(strncmp(tmp.ptr, "kept:", 5) == 0);
    assert_non_null(strstr(tmp.ptr + 5, "/.tmp-blob-"));
    assert_int_equal(berth__fs_write_all(fd, tmp.ptr + 5, "bytes", 5), 0);
    assert_int_equal(berth__fs_commit(fd, tmp.ptr + 5, dst.ptr, true), 0);
    check_file(dst.ptr, "bytes");
    assert_int_equal(entries(root), 1);

    /* a failed commit closes the descriptor and removes the temporary file */
    berth_buf_clear(&tmp);
    assert_int_equal(berth__fs_tmpfile(&fd, &tmp, root, ".tmp-"), 0);
    assert_int_equal(berth_buf_printf(&bad, "%s/no/such/dir", root), 0);
    assert_int_equal(berth__fs_commit(fd, tmp.ptr, bad.ptr, true), BERTH_EIO);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(access(tmp.ptr, F_OK), -1);
    assert_int_equal(entries(root), 1);

    /* no such directory for the temporary file */
    berth_buf_clear(&tmp);
    assert_int_equal(berth__fs_tmpfile(&fd, &tmp, bad.ptr, ".tmp-"), BERTH_EIO);
    assert_int_equal(fd, -1);
    berth_buf_dispose(&tmp);
    berth_buf_dispose(&dst);
    berth_buf_dispose(&bad);
}

static void test_fs__read_file_codes(void **state)
{
    const char *root = *state;
    berth_buf p = BERTH_BUF_INIT, b = BERTH_BUF_INIT;

    assert_int_equal(berth_buf_printf(&p, "%s/f", root), 0);
    assert_int_equal(berth__fs_read_file(&b, p.ptr, 10), BERTH_ENOTFOUND);
    /* no server path in the message (the store hands it to registry clients) */
    assert_null(strstr(berth_error_last(), root));
    assert_int_equal(berth__fs_write_atomic(root, p.ptr, "0123456789x", 11, false), 0);
    assert_int_equal(berth__fs_read_file(&b, p.ptr, 10), BERTH_ETOOBIG);
    berth_buf_clear(&b);
    assert_int_equal(berth__fs_read_file(&b, p.ptr, 11), 0);
    assert_int_equal(b.len, 11);
    berth_buf_dispose(&p);
    berth_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fs__write_atomic_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs__failed_write_leaves_old_file_and_no_debris, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fs__tmpfile_and_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs__read_file_codes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
