# The referee pytest plugin lives in fixtures/; loading it here makes it active for
# every test under this directory (suites/ and tests/).
pytest_plugins = ["fixtures.plugin"]
