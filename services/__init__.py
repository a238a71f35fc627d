"""The four Sada services, each its own process: intake, router, notifier and archive."""
