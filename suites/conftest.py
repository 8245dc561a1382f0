"""suites/: the tests that run against a DUT (`referee run`)."""
