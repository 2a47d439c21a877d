// RESRL_TEST_ASAN is 1 when the tests are built with AddressSanitizer (GCC
// and clang announce it differently), for tests that must scale down or
// skip a check that ASan changes.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define RESRL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RESRL_TEST_ASAN 1
#endif
#endif
#ifndef RESRL_TEST_ASAN
#define RESRL_TEST_ASAN 0
#endif
