"""The sans-IO TCP engine: pure Python, never touches a socket or a clock."""
