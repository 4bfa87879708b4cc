from tests.testing.dbthreads import release_db_threads  # noqa: F401 (autouse)
