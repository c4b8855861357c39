"""The `bitbylaw` command line (placeholder replaced below)."""
def main():
    raise SystemExit("not yet")
