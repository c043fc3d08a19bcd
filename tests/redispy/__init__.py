"""redis-py's own tests (tests/test_commands.py of the installed redis-py's sdist) run
against a server: the runner (``suite``), its pytest plugin (``redispy_probe``) and the
list of tests the store must pass (``expected_pass.txt``)."""
