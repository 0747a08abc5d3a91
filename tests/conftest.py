pytest_plugins = ["tests.redis_fixtures", "tests.dcslog_fixtures", "tests.backend_fixtures"]
