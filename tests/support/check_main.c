/*
 * check_main.c: main() for every Check test executable. Each test file
 * defines test_suite(); this runs it and sets the exit code, so ctest
 * sees one pass or fail per executable and Check prints its summary.
 */
#include <check.h>
#include <stdlib.h>

#include "support/support.h"

int
main(void)
{
    SRunner *sr = srunner_create(test_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
