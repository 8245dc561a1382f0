# The referee pytest plugins live in fixtures/ (fixtures and options; reports); loading them
# here makes them active for every test under this directory (suites/ and tests/).
pytest_plugins = ["fixtures.verdicts", "fixtures.plugin", "fixtures.reporting", "fixtures.sharding",
                  "suites.load.load_options"]
